# Cloud Functions gen2, one per component (shared/components.py), each running as its
# component's service account. HTTPS functions (api, oauth-P, webhook-P) are public; every
# Pub/Sub-triggered function is internal-only and invocable only by the Pub/Sub push account.

locals {
  provider_env = merge([
    for p in local.enabled : merge(
      contains(keys(var.oauth_client_ids), p) ? { "KEYWAY_${upper(p)}_CLIENT_ID" = var.oauth_client_ids[p] } : {},
      contains(keys(lookup(var.provider_urls, p, {})), "api") ? { "KEYWAY_${upper(p)}_API_URL" = var.provider_urls[p]["api"] } : {},
      contains(keys(lookup(var.provider_urls, p, {})), "oauth") ? { "KEYWAY_${upper(p)}_OAUTH_URL" = var.provider_urls[p]["oauth"] } : {},
    )
  ]...)

  # The App's own OAuth client redeems the install flow's code (secret github-app-client-secret).
  github_app_env = var.github_app_id == "" ? {} : {
    KEYWAY_GITHUB_APP_ID        = var.github_app_id
    KEYWAY_GITHUB_APP_SLUG      = var.github_app_slug
    KEYWAY_GITHUB_APP_CLIENT_ID = var.github_app_client_id
  }

  common_env = merge(
    {
      KEYWAY_BACKEND           = "gcp"
      KEYWAY_PROJECT           = var.project
      KEYWAY_PUBLIC_URL        = local.public_url
      KEYWAY_FRONTEND_URL      = var.frontend_url
      KEYWAY_AUTH_ISSUER       = var.auth_issuer
      KEYWAY_AUTH_AUDIENCE     = var.auth_audience
      KEYWAY_BUSINESS_DATABASE = "(default)"
      KEYWAY_VAULT_DATABASE    = "vault"
      KEYWAY_KMS_LOCATION      = var.region
      KEYWAY_KMS_KEY_RING      = google_kms_key_ring.keyway.name
      KEYWAY_LOG_LEVEL         = var.log_level
      # A fetch checkpoints before Pub/Sub's push ack deadline would redeliver the job.
      KEYWAY_SYNC_BUDGET_SECONDS = tostring(var.sync_budget_seconds)
    },
    var.auth_jwks_url == "" ? {} : { KEYWAY_AUTH_JWKS_URL = var.auth_jwks_url },
    local.provider_env,
    local.github_app_env,
  )
}

resource "google_storage_bucket" "sources" {
  project                     = var.project
  name                        = "${var.project}-keyway-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 5
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:this bucket receives the source bucket's access logs; logging it to itself would loop
  project                     = var.project
  name                        = "${var.project}-keyway-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  for_each = local.kw_components
  name     = "${each.key}-${filemd5("${var.source_dir}/${each.key}.zip")}.zip"
  bucket   = google_storage_bucket.sources.name
  source   = "${var.source_dir}/${each.key}.zip"
}

# Public HTTPS functions (api, oauth-P, webhook-P).
resource "google_cloudfunctions2_function" "public" {
  #checkov:skip=CKV_GCP_124:api, oauth-P and webhook-P must be reachable from browsers and provider webhooks; each authenticates callers itself (bearer JWT, OAuth state, webhook signature)
  for_each = { for k, v in local.kw_components : k => v if v.public }
  project  = var.project
  name     = each.key
  location = var.region

  build_config {
    runtime           = "python311"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    available_memory                 = var.function_memory
    timeout_seconds                  = 60
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.component[each.value.account].email
    environment_variables            = local.common_env
    max_instance_request_concurrency = 1
  }

  labels = { app = "keyway" }

  depends_on = [google_project_service.api, google_artifact_registry_repository_iam_member.builder,
  google_storage_bucket_iam_member.builder_sources, google_project_iam_member.builder_logs]
}

# Pub/Sub-triggered functions: internal only (Pub/Sub push from this project).
resource "google_cloudfunctions2_function" "internal" {
  for_each = { for k, v in local.kw_components : k => v if !v.public }
  project  = var.project
  name     = each.key
  location = var.region

  build_config {
    runtime           = "python311"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    available_memory                 = var.function_memory
    timeout_seconds                  = var.kw_subscription.ack_deadline # a longer run is redelivered anyway
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.component[each.value.account].email
    environment_variables            = local.common_env
    max_instance_request_concurrency = 1
  }

  labels = { app = "keyway" }

  depends_on = [google_project_service.api, google_artifact_registry_repository_iam_member.builder,
  google_storage_bucket_iam_member.builder_sources, google_project_iam_member.builder_logs]
}

locals {
  # service_config.service is projects/…/services/<name>; the IAM resource takes the name.
  function_service = merge(
    { for k, f in google_cloudfunctions2_function.public : k => reverse(split("/", f.service_config[0].service))[0] },
    { for k, f in google_cloudfunctions2_function.internal : k => reverse(split("/", f.service_config[0].service))[0] },
  )
  function_uri = merge(
    { for k, f in google_cloudfunctions2_function.public : k => f.service_config[0].uri },
    { for k, f in google_cloudfunctions2_function.internal : k => f.service_config[0].uri },
  )
}

# Public HTTPS functions: api (bearer JWT), oauth-P (browser redirects), webhook-P (signed).
resource "google_cloud_run_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:api, oauth-P and webhook-P are public endpoints by design (browser redirects, provider webhooks, bearer-JWT API); each authenticates its callers itself
  for_each = { for k, v in local.kw_components : k => v if v.public }
  project  = var.project
  location = var.region
  service  = local.function_service[each.key]
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub-triggered functions: only Pub/Sub push (as kw-pubsub-push) may invoke them.
resource "google_cloud_run_service_iam_member" "push" {
  for_each = { for k, v in local.kw_components : k => v if !v.public }
  project  = var.project
  location = var.region
  service  = local.function_service[each.key]
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}
