# Operator inputs (set them in deploy.auto.tfvars, see deploy.auto.tfvars.example). The
# policy-derived inputs (kw_*) are declared in policy_variables.tf and set by the generated
# policy.auto.tfvars.json (python -m keyway.infra_export); do not edit those by hand.

variable "project" {
  description = "GCP project id keyway deploys into."
  type        = string
}

variable "region" {
  description = "Region for Cloud Functions, Pub/Sub, Cloud Scheduler and KMS."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location of both databases (a region or multi-region such as eur3)."
  type        = string
  default     = "europe-west1"
}

variable "source_dir" {
  description = "Folder with one <function>.zip per function (python -m keyway.package)."
  type        = string
  default     = "../dist"
}

variable "enabled_providers" {
  description = "Providers to deploy (their token, fetch, act and webhook components, topics and secrets)."
  type        = set(string)
  default     = ["github", "gitlab", "bitbucket", "jira"]
  validation {
    condition     = length(setsubtract(var.enabled_providers, ["github", "gitlab", "bitbucket", "jira"])) == 0
    error_message = "enabled_providers may only contain github, gitlab, bitbucket and jira."
  }
}

variable "public_url" {
  description = "Where the functions are reachable (KEYWAY_PUBLIC_URL); empty = https://<region>-<project>.cloudfunctions.net."
  type        = string
  default     = ""
}

variable "frontend_url" {
  description = "Where the browser lands after a connect flow (KEYWAY_FRONTEND_URL), https."
  type        = string
}

variable "auth_issuer" {
  description = "iss of the API's bearer tokens (KEYWAY_AUTH_ISSUER), exactly as the issuer writes it."
  type        = string
}

variable "auth_audience" {
  description = "aud of the API's bearer tokens (KEYWAY_AUTH_AUDIENCE)."
  type        = string
  default     = "keyway-api"
}

variable "auth_jwks_url" {
  description = "Optional KEYWAY_AUTH_JWKS_URL; empty = <issuer>/.well-known/jwks.json."
  type        = string
  default     = ""
}

variable "oauth_client_ids" {
  description = "OAuth client id per provider (KEYWAY_<PROVIDER>_CLIENT_ID); the secrets live in Secret Manager."
  type        = map(string)
  default     = {}
}

variable "provider_urls" {
  description = "Optional per-provider base URLs, e.g. { gitlab = { api = \"https://gitlab.example.com/api/v4\", oauth = \"https://gitlab.example.com\" } }."
  type        = map(map(string))
  default     = {}
}

variable "github_app_id" {
  description = "Optional GitHub App id (KEYWAY_GITHUB_APP_ID); its key goes in the secret github-app-private-key."
  type        = string
  default     = ""
}

variable "github_app_slug" {
  description = "Optional GitHub App slug (KEYWAY_GITHUB_APP_SLUG)."
  type        = string
  default     = ""
}

variable "github_app_client_id" {
  description = "The GitHub App's own Client ID (KEYWAY_GITHUB_APP_CLIENT_ID, not the app id and not the OAuth App's); its client secret goes in the secret github-app-client-secret."
  type        = string
  default     = ""
}

variable "log_level" {
  description = "KEYWAY_LOG_LEVEL of every function."
  type        = string
  default     = "INFO"
}

variable "kms_rotation_period" {
  description = "Rotation period of every KMS key (at most 90 days)."
  type        = string
  default     = "7776000s"
}

variable "firestore_cmek_key" {
  description = "Optional Cloud KMS key (full resource name) for Firestore CMEK; empty = Google-managed encryption. Can only be set when the databases are created."
  type        = string
  default     = ""
}

variable "refresh_schedule" {
  description = "Cron schedule of the refresh.tick published to refresh-ticks. Every minute: the tick also resumes syncs whose lease ran out or whose retry is due, and asks again for queued actions whose time has come, within a minute."
  type        = string
  default     = "* * * * *"
}

variable "scheduler_time_zone" {
  description = "Time zone of the refresh schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "min_instances" {
  description = "Minimum instances per function (0 = scale to zero)."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Maximum instances per function."
  type        = number
  default     = 10
}

variable "sync_budget_seconds" {
  description = "KEYWAY_SYNC_BUDGET_SECONDS: longest a fetch invocation works before it checkpoints; below the 60 s push ack deadline."
  type        = number
  default     = 40
  validation {
    condition     = var.sync_budget_seconds >= 1 && var.sync_budget_seconds < 60
    error_message = "sync_budget_seconds must be between 1 and 59 (the subscriptions' ack deadline is 60 s)."
  }
}

variable "function_memory" {
  description = "Memory of every function."
  type        = string
  default     = "512Mi"
}

variable "github_owner" {
  description = "GitHub owner of the keyway repository for the Cloud Build trigger; empty = no trigger."
  type        = string
  default     = ""
}

variable "github_repo" {
  description = "GitHub repository name for the Cloud Build trigger."
  type        = string
  default     = "keyway"
}

variable "deploy_branch" {
  description = "Branch regex whose pushes run cloudbuild.yaml."
  type        = string
  default     = "^main$"
}

variable "tf_state_bucket" {
  description = "Bucket holding Terraform state (passed to Cloud Build as _TF_STATE_BUCKET)."
  type        = string
  default     = ""
}

variable "deployer_service_account" {
  description = "Email of the account Cloud Build deploys as (created by the operator, docs/DEPLOY.md); empty = no trigger."
  type        = string
  default     = ""

  validation {
    condition = var.deployer_service_account == "" || (
      !endswith(var.deployer_service_account, "@cloudbuild.gserviceaccount.com") &&
    !endswith(var.deployer_service_account, "-compute@developer.gserviceaccount.com"))
    error_message = "deployer_service_account must be a dedicated account (kw-deployer, docs/DEPLOY.md), not the default Cloud Build or Compute Engine account."
  }
}
