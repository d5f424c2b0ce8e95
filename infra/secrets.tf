# Secret Manager secrets keyway reads, each readable only by the accounts that need it.
# Values are added by the operator (docs/DEPLOY.md) except the vault data keys, which the vault
# creates lazily (it may add versions to its own data-key secret and to no other).

resource "google_secret_manager_secret" "keyway" {
  for_each  = local.kw_secrets
  project   = var.project
  secret_id = each.key

  replication {
    auto {}
  }

  labels = {
    app = "keyway"
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "keyway" {
  for_each  = local.kw_secret_iam_deployed
  project   = var.project
  secret_id = google_secret_manager_secret.keyway[each.value.secret_id].secret_id
  role      = each.value.role
  member    = "serviceAccount:${google_service_account.component[each.value.account].email}"
}

# Secrets made at run time, read through a name-prefix condition:
# - webhook-secret-<connection>, created per connection (by oauth-P when an admin connects with
#   webhook registration on) and deleted on disconnect (by vault-P); webhook-P and fetch-P read
#   those, and only those;
# - notify-secret-<subscription> (notification signing secrets): notify reads them;
# - host-<provider>-<hash>-client-secret, a registered self-hosted host's OAuth client secret
#   (written by the api at registration); only that provider's token component reads them.
resource "google_project_iam_member" "secret_prefix" {
  for_each = local.kw_secret_prefix_iam
  project  = var.project
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"

  condition {
    title       = "only ${each.value.prefix}*"
    description = "Secrets of this name prefix only."
    expression  = "resource.name.startsWith(\"${local.project_path}/secrets/${each.value.prefix}\")"
  }
}

# The token component (oauth-P, vault-P) creates, adds versions to and deletes those secrets,
# and nothing else: a custom role with exactly those permissions, on the same prefix condition.
# It cannot read them (no secretmanager.versions.access).
resource "google_project_iam_custom_role" "connection_webhook_secrets" {
  project     = var.project
  role_id     = "kwConnectionWebhookSecrets"
  title       = "keyway per-connection webhook secrets"
  description = "Create, add versions to and delete webhook-secret-<connection> secrets."
  permissions = var.kw_connection_secret_permissions
}

# secretmanager.secrets.create is checked on the parent project (the new secret has no name
# to test yet), so the condition also admits the project itself; every other permission of
# the role (versions.add, secrets.delete) is checked on a secret and so holds only for names
# with the prefix.
resource "google_project_iam_member" "secret_prefix_writer" {
  for_each = local.kw_secret_writer_iam
  project  = var.project
  role     = google_project_iam_custom_role.connection_webhook_secrets.id
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"

  condition {
    title       = "create, or only ${each.value.prefix}*"
    description = "Create a secret (checked on the project); change or delete per-connection webhook secrets only."
    expression  = "resource.type == \"cloudresourcemanager.googleapis.com/Project\" || resource.name.startsWith(\"${local.project_path}/secrets/${each.value.prefix}\")"
  }
}

# notify-secret-<subscription>: the api creates one when a tenant admin subscribes to
# notifications and deletes it with the subscription; it never reads one (notify does).
resource "google_project_iam_custom_role" "notify_secrets" {
  project     = var.project
  role_id     = "kwNotifySecrets"
  title       = "keyway notification signing secrets"
  description = "Create, add versions to and delete notify-secret-<subscription> secrets."
  permissions = var.kw_connection_secret_permissions
}

resource "google_project_iam_member" "notify_secret_writer" {
  for_each = var.kw_notify_secret_writer_iam
  project  = var.project
  role     = google_project_iam_custom_role.notify_secrets.id
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"

  condition {
    title       = "create, or only ${each.value.prefix}*"
    description = "Create a secret (checked on the project); change or delete notification signing secrets only."
    expression  = "resource.type == \"cloudresourcemanager.googleapis.com/Project\" || resource.name.startsWith(\"${local.project_path}/secrets/${each.value.prefix}\")"
  }
}

# Registered self-hosted hosts (GitHub Enterprise Server, self-managed GitLab): the api stores
# each host's OAuth client secret at registration and deletes it on removal, and may never read
# one (no secretmanager.versions.access). Same shape as the connection secrets' writer: create
# is checked on the project, everything else only on host-* secrets.
resource "google_project_iam_custom_role" "host_client_secrets" {
  project     = var.project
  role_id     = "kwHostClientSecrets"
  title       = "keyway registered hosts' client secrets"
  description = "Create, add versions to and delete host-<provider>-<hash>-client-secret secrets."
  permissions = var.kw_host_secret_permissions
}

resource "google_project_iam_member" "host_secret_writer" {
  for_each = local.kw_host_secret_writer
  project  = var.project
  role     = google_project_iam_custom_role.host_client_secrets.id
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"

  condition {
    title       = "create, or only ${each.value.prefix}*"
    description = "Create a secret (checked on the project); change or delete registered hosts' client secrets only."
    expression  = "resource.type == \"cloudresourcemanager.googleapis.com/Project\" || resource.name.startsWith(\"${local.project_path}/secrets/${each.value.prefix}\")"
  }
}
