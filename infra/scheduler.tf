# Cloud Scheduler publishes refresh.tick to refresh-ticks; the scheduler function finds the
# connections due for refresh. Attributes are the envelope every keyway message carries.

resource "google_cloud_scheduler_job" "refresh_tick" {
  project     = var.project
  region      = var.region
  name        = "keyway-refresh-tick"
  description = "refresh.tick for the scheduler function"
  schedule    = var.refresh_schedule
  time_zone   = var.scheduler_time_zone

  retry_config {
    retry_count = 0 # the next tick is the retry
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic["refresh-ticks"].id
    data       = base64encode("{}")
    attributes = {
      type    = "refresh.tick"
      version = "1"
      sender  = "cloud-scheduler"
    }
  }

  depends_on = [google_pubsub_topic_iam_member.external_publisher]
}
