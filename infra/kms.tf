# One key per component that keeps data keys (vault-P); its data keys are stored only wrapped by
# it, and only that component's account may use it.

resource "google_kms_key_ring" "keyway" {
  project  = var.project
  name     = "keyway"
  location = var.region

  depends_on = [google_project_service.api]
}

resource "google_kms_crypto_key" "component" {
  for_each        = local.kw_kms_keys
  name            = each.key
  key_ring        = google_kms_key_ring.keyway.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.kms_rotation_period

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "component" {
  for_each      = local.kw_kms_iam
  crypto_key_id = google_kms_crypto_key.component[each.value.key].id
  role          = each.value.role
  member        = "serviceAccount:${google_service_account.component[each.value.account].email}"
}

# Pub/Sub messages at rest (topics and dead letters) under a keyway key; only the Pub/Sub service
# agent uses it.
resource "google_kms_crypto_key" "pubsub" {
  name            = "pubsub"
  key_ring        = google_kms_key_ring.keyway.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.kms_rotation_period

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  crypto_key_id = google_kms_crypto_key.pubsub.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent
}
