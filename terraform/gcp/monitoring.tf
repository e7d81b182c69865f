locals {
  # Monitoring filter language (not MQL, which is deprecated): the Cloud Run request metrics
  # of this service, across all of its revisions.
  run_requests = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${google_cloud_run_v2_service.main.name}\"",
  ])

  # Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs"). A policy
  # fires only when the long window and the short one both burn too fast: the long window
  # proves the burn is significant, the short one that it is still going on, so the alert
  # also resolves soon after the burn stops.
  #   fast: 2 % of the 28-day budget in 1 h (14.4x) -> page
  #   slow: 5 % of the budget in 6 h (6x)           -> ticket
  burn_rate_alerts = {
    fast = { long = "3600s", short = "300s", threshold = 14.4, severity = "CRITICAL" }
    slow = { long = "21600s", short = "1800s", threshold = 6, severity = "WARNING" }
  }

  slos = {
    availability = google_monitoring_slo.availability.name
    latency      = google_monitoring_slo.latency.name
  }

  slo_burn_rate_alerts = {
    for pair in setproduct(keys(local.slos), keys(local.burn_rate_alerts)) :
    "${pair[0]}-${pair[1]}" => merge(local.burn_rate_alerts[pair[1]], {
      slo   = pair[0]
      speed = pair[1]
      name  = local.slos[pair[0]]
    })
  }
}

resource "google_monitoring_notification_channel" "email" {
  project      = var.project_id
  display_name = "${var.service_name} on-call"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.main]
}

# Readiness, not liveness: the check passes only when the service can reach Firestore, which
# is what a user needs.
resource "google_monitoring_uptime_check_config" "ready" {
  project      = var.project_id
  display_name = "${var.service_name} ${local.revision.probes.startup.path}"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path         = local.revision.probes.startup.path
    port         = 443
    use_ssl      = true
    validate_ssl = true
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = trimprefix(google_cloud_run_v2_service.main.uri, "https://")
    }
  }

  depends_on = [google_project_service.main]
}

resource "google_monitoring_alert_policy" "uptime" {
  project               = var.project_id
  display_name          = "${var.service_name} is unreachable"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = [google_monitoring_notification_channel.email.name]

  conditions {
    display_name = "Uptime check failing from more than one region"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\"",
        "resource.type=\"uptime_url\"",
        "metric.labels.check_id=\"${google_monitoring_uptime_check_config.ready.uptime_check_id}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"

      # One failing checker region is a network blip; two or more for five minutes is an outage.
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Uptime checks of ${local.revision.probes.startup.path} on ${google_cloud_run_v2_service.main.uri} fail from several regions: the service is down or cannot reach Firestore. Look at the latest revision and its traffic split in Cloud Run, then at Firestore."
  }
}

resource "google_monitoring_custom_service" "main" {
  project      = var.project_id
  service_id   = var.service_name
  display_name = var.service_name

  telemetry {
    resource_name = "//run.googleapis.com/projects/${var.project_id}/locations/${var.region}/services/${google_cloud_run_v2_service.main.name}"
  }

  depends_on = [google_project_service.main]
}

# Availability: requests not answered with a 5xx, over all requests. 4xx are the client's
# mistakes and count as served.
resource "google_monitoring_slo" "availability" {
  project             = var.project_id
  service             = google_monitoring_custom_service.main.service_id
  slo_id              = "availability"
  display_name        = "Availability: requests not answered 5xx, rolling 28 days"
  goal                = var.availability_goal
  rolling_period_days = 28

  request_based_sli {
    good_total_ratio {
      bad_service_filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/request_count\"",
        local.run_requests,
        "metric.labels.response_code_class=\"5xx\"",
      ])
      total_service_filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/request_count\"",
        local.run_requests,
      ])
    }
  }
}

# Latency: the share of requests Cloud Run answered faster than the threshold.
resource "google_monitoring_slo" "latency" {
  project             = var.project_id
  service             = google_monitoring_custom_service.main.service_id
  slo_id              = "latency"
  display_name        = "Latency: requests answered under ${var.latency_threshold_ms} ms, rolling 28 days"
  goal                = var.latency_goal
  rolling_period_days = 28

  request_based_sli {
    distribution_cut {
      distribution_filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/request_latencies\"",
        local.run_requests,
      ])
      # request_latencies is in milliseconds. The provider documents range.max as inclusive: a request of
      # exactly latency_threshold_ms counts as fast.
      range {
        max = var.latency_threshold_ms
      }
    }
  }
}

resource "google_monitoring_alert_policy" "slo_burn_rate" {
  for_each = local.slo_burn_rate_alerts

  project               = var.project_id
  display_name          = "${var.service_name} ${each.value.slo} SLO: ${each.value.speed} error-budget burn"
  combiner              = "AND"
  severity              = each.value.severity
  notification_channels = [google_monitoring_notification_channel.email.name]

  conditions {
    display_name = "Burn rate over ${each.value.threshold}x across ${each.value.long}"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${each.value.name}\", \"${each.value.long}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"
    }
  }

  conditions {
    display_name = "Burn rate over ${each.value.threshold}x across ${each.value.short}"
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${each.value.name}\", \"${each.value.short}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The ${each.value.slo} SLO of ${var.service_name} is spending its 28-day error budget ${each.value.threshold} times faster than it can afford. If a rollout is under way the pipeline's gates should already be rolling it back; otherwise roll back to the previous revision in Cloud Run and look at Firestore."
  }
}
