# Two Firestore databases: (default) for business data and vault for vault records. Only the
# token components (vault-P/oauth-P) may use the vault database: every grant is conditioned on
# one database's resource name.

locals {
  databases = {
    "(default)" = "business data"
    "vault"     = "vault records (token components only)"
  }
}

resource "google_firestore_database" "db" {
  for_each                          = local.databases
  project                           = var.project
  name                              = each.key
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "PESSIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  dynamic "cmek_config" {
    for_each = var.firestore_cmek_key == "" ? [] : [var.firestore_cmek_key]
    content {
      kms_key_name = cmek_config.value
    }
  }

  depends_on = [google_project_service.api, google_kms_crypto_key_iam_member.firestore_cmek]
}

# With CMEK, the Firestore service agent must be able to use the key.
resource "google_kms_crypto_key_iam_member" "firestore_cmek" {
  count         = var.firestore_cmek_key == "" ? 0 : 1
  crypto_key_id = var.firestore_cmek_key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.firestore_agent
}

resource "google_firestore_backup_schedule" "daily" {
  for_each  = google_firestore_database.db
  project   = var.project
  database  = each.value.name
  retention = "1209600s" # 14 days

  daily_recurrence {}
}

# TTL acts only on a native timestamp field: the expiring documents carry purge_at (a
# timestamp) beside the expires_at string their code queries (shared/retention.py).
resource "google_firestore_field" "ttl" {
  for_each   = var.kw_ttl_collections
  project    = var.project
  database   = google_firestore_database.db[each.value.database].name
  collection = each.key
  field      = each.value.field

  ttl_config {}

  # Nothing queries purge_at: no single-field indexes for it.
  index_config {}
}

# Composite indexes: every query that filters on one field and ranges or orders on another needs
# one, or Cloud Firestore refuses it (the emulator does not). The list is shared/indexes.py,
# exported to indexes.auto.tfvars.json; each index builds for minutes after apply.
resource "google_firestore_index" "composite" {
  for_each    = var.kw_firestore_indexes
  project     = var.project
  database    = google_firestore_database.db[each.value.database].name
  collection  = each.value.collection
  query_scope = "COLLECTION"
  api_scope   = "ANY_API"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.field_path
      order      = fields.value.order
    }
  }
}

resource "google_project_iam_member" "database" {
  for_each = local.kw_database_iam
  project  = var.project
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"

  condition {
    title       = "only the ${each.value.database} database"
    description = "Firestore database ${each.value.database} only."
    expression  = "resource.name == \"projects/${var.project}/databases/${each.value.database}\""
  }

  depends_on = [google_firestore_database.db]
}
