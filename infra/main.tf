# keyway on GCP. Resource files: iam.tf (service accounts), kms.tf, secrets.tf, pubsub.tf,
# firestore.tf, functions.tf, scheduler.tf, cloudbuild.tf. Every binding between components
# iterates over a policy-derived map (policy.auto.tfvars.json), filtered to enabled providers.

data "google_project" "this" {
  project_id = var.project
}

locals {
  enabled = var.enabled_providers

  kw_components          = { for k, v in var.kw_components : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_accounts            = { for k, v in var.kw_accounts : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_topics              = { for k, v in var.kw_topics : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_topic_iam           = { for k, v in var.kw_topic_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_subscription_iam    = { for k, v in var.kw_subscription_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_external_publishers = { for k, v in var.kw_external_publishers : k => v }
  kw_secrets             = { for k, v in var.kw_secrets : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_secret_iam          = { for k, v in var.kw_secret_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_secret_prefix_iam   = { for k, v in var.kw_secret_prefix_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_secret_writer_iam   = { for k, v in var.kw_secret_writer_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_host_secret_writer  = { for k, v in var.kw_host_secret_writer_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_kms_keys            = { for k, v in var.kw_kms_keys : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_kms_iam             = { for k, v in var.kw_kms_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }
  kw_database_iam        = { for k, v in var.kw_database_iam : k => v if v.provider == "" || contains(local.enabled, v.provider) }

  # Topics whose publisher or subscriber is a disabled provider's component are filtered above;
  # a publisher binding must also name a deployed topic (e.g. api → sync-requests-jira).
  kw_topic_iam_deployed        = { for k, v in local.kw_topic_iam : k => v if contains(keys(local.kw_topics), v.topic) }
  kw_subscription_iam_deployed = { for k, v in local.kw_subscription_iam : k => v if contains(keys(local.kw_topics), v.topic) }
  kw_secret_iam_deployed       = { for k, v in local.kw_secret_iam : k => v if contains(keys(local.kw_secrets), v.secret_id) }

  public_url   = var.public_url != "" ? trimsuffix(var.public_url, "/") : "https://${var.region}-${var.project}.cloudfunctions.net"
  project_path = "projects/${data.google_project.this.number}"

  pubsub_agent    = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  scheduler_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
  firestore_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-firestore.iam.gserviceaccount.com"

  # The only members that are not keyway service accounts (see tests/unit/test_infra.py).
  external_members = {
    "cloud-scheduler" = local.scheduler_agent
  }

  apis = [
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each           = toset(local.apis)
  project            = var.project
  service            = each.value
  disable_on_destroy = false
}
