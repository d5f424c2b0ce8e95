# The functions' builds run as their own account instead of the project's default build
# account (which holds broad project roles). It may read the uploaded sources, push the built
# images to keyway's own Artifact Registry repository and write build logs — nothing else.

resource "google_service_account" "builder" {
  project      = var.project
  account_id   = "kw-function-builder"
  display_name = "keyway function builder"
  description  = "Builds keyway's Cloud Functions from their source zips."
}

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:the images hold only the functions' public source and pinned dependencies, no data; Google-managed encryption applies
  project       = var.project
  location      = var.region
  repository_id = "keyway-functions"
  description   = "Container images of keyway's Cloud Functions."
  format        = "DOCKER"

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_artifact_registry_repository_iam_member" "builder" {
  project    = var.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.builder.email}"
}

resource "google_storage_bucket_iam_member" "builder_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.builder.email}"
}

resource "google_project_iam_member" "builder_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.builder.email}"
}
