# Topics, subscriptions and dead letters from the policy table (shared/policy.py) and the
# subscription spec (shared/topology.py). Each topic has one push subscription to its
# subscriber's function; undeliverable messages go to <topic>-dead-letter, where the
# <topic>-dead-letter-hold subscription keeps them for operators (keyway dead-letters …).

locals {
  message_retention = "604800s" # 7 days, the Pub/Sub maximum for subscriptions
}

resource "google_pubsub_topic" "topic" {
  for_each                   = local.kw_topics
  project                    = var.project
  name                       = each.key
  message_retention_duration = local.message_retention
  kms_key_name               = google_kms_crypto_key.pubsub.id
  labels                     = { app = "keyway" }

  depends_on = [google_project_service.api, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_topic" "dead_letter" {
  for_each                   = local.kw_topics
  project                    = var.project
  name                       = each.value.dead_letter
  message_retention_duration = local.message_retention
  kms_key_name               = google_kms_crypto_key.pubsub.id
  labels                     = { app = "keyway" }

  depends_on = [google_project_service.api, google_kms_crypto_key_iam_member.pubsub_agent]
}

# The push endpoint's path names the topic so functions-framework turns the push into the same
# CloudEvent an Eventarc trigger would deliver (as the local runner does).
resource "google_pubsub_subscription" "subscription" {
  for_each                   = local.kw_topics
  project                    = var.project
  name                       = each.value.subscription
  topic                      = google_pubsub_topic.topic[each.key].id
  ack_deadline_seconds       = var.kw_subscription.ack_deadline
  message_retention_duration = local.message_retention
  labels                     = { app = "keyway" }

  push_config {
    push_endpoint = "${local.function_uri[each.value.subscriber]}/projects/${var.project}/topics/${each.key}"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.function_uri[each.value.subscriber]
    }
  }

  retry_policy {
    minimum_backoff = var.kw_subscription.min_backoff
    maximum_backoff = var.kw_subscription.max_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.kw_subscription.max_attempts
  }

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "hold" {
  for_each                   = local.kw_topics
  project                    = var.project
  name                       = each.value.hold
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = var.kw_subscription.ack_deadline
  message_retention_duration = local.message_retention
  retain_acked_messages      = false
  labels                     = { app = "keyway" }

  expiration_policy {
    ttl = ""
  }
}

# Publishers: exactly shared.policy.iam_bindings().
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.kw_topic_iam_deployed
  project  = var.project
  topic    = google_pubsub_topic.topic[each.value.topic].name
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"
}

# Outlet topics (shared.policy.OUTLETS): keyway-events carries every notification event for
# consumers inside the product. keyway publishes (notify) and subscribes to nothing here:
# a consumer creates its own subscription and is granted roles/pubsub.subscriber on it.
resource "google_pubsub_topic" "outlet" {
  for_each                   = var.kw_outlets
  project                    = var.project
  name                       = each.key
  message_retention_duration = local.message_retention
  kms_key_name               = google_kms_crypto_key.pubsub.id
  labels                     = { app = "keyway" }

  depends_on = [google_project_service.api, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_topic_iam_member" "outlet_publisher" {
  for_each = var.kw_outlet_iam
  project  = var.project
  topic    = google_pubsub_topic.outlet[each.value.topic].name
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.component[each.value.account].email}"
}

# Cloud Scheduler (refresh-ticks) publishes as its service agent.
resource "google_pubsub_topic_iam_member" "external_publisher" {
  for_each = local.kw_external_publishers
  project  = var.project
  topic    = google_pubsub_topic.topic[each.value.topic].name
  role     = "roles/pubsub.publisher"
  member   = local.external_members[each.value.publisher]
}

# Subscribers: the topic's subscriber component, on the topic's subscription.
resource "google_pubsub_subscription_iam_member" "subscriber" {
  for_each     = local.kw_subscription_iam_deployed
  project      = var.project
  subscription = google_pubsub_subscription.subscription[each.value.topic].name
  role         = each.value.role
  member       = "serviceAccount:${google_service_account.component[each.value.account].email}"
}

# Dead-lettering: the Pub/Sub service agent forwards from each subscription to its dead-letter
# topic.
resource "google_pubsub_topic_iam_member" "dead_letter_agent" {
  for_each = local.kw_topics
  project  = var.project
  topic    = google_pubsub_topic.dead_letter[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent" {
  for_each     = local.kw_topics
  project      = var.project
  subscription = google_pubsub_subscription.subscription[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
