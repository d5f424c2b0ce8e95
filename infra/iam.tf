# One service account per component (vault-P and oauth-P share token-P: one token component).
# Components get no project-level role except Firestore access, which an IAM condition limits to
# one database (firestore.tf). Everything else is granted on the single resource it concerns.

resource "google_service_account" "component" {
  for_each     = local.kw_accounts
  project      = var.project
  account_id   = each.value.account_id
  display_name = "keyway ${each.key}"
  description  = "Runs ${join(", ", each.value.components)}."
}

# Pub/Sub pushes to the internal-only Pub/Sub-triggered functions with an OIDC token of this
# account; it may invoke those functions and nothing else.
resource "google_service_account" "push" {
  project      = var.project
  account_id   = "kw-pubsub-push"
  display_name = "keyway Pub/Sub push"
  description  = "Identity of Pub/Sub push deliveries to keyway's Pub/Sub-triggered functions."
}

resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

