resource "google_cloud_run_v2_service" "main" {
  project  = var.project_id
  name     = var.service_name
  location = var.region

  # The API is public: anyone on the internet may call it.
  ingress = "INGRESS_TRAFFIC_ALL"

  # Terraform refuses to destroy the service until this is set to false and applied.
  deletion_protection = true

  # Every revision's image must pass the project's Binary Authorization policy (binary_authorization.tf):
  # built and attested by Cloud Build here. `gcloud run deploy --breakglass` is the audited way round it.
  binary_authorization {
    use_default = true
  }

  # Only the first revision comes from here. Its shape is deploy/revision.yaml, the same file the
  # pipeline deploys every later revision from; only the image differs (a placeholder until the
  # pipeline has built one).
  template {
    # A fixed name tells the pipeline that this placeholder is no baseline for a canary.
    revision                         = local.bootstrap_revision
    service_account                  = google_service_account.runtime.email
    execution_environment            = "EXECUTION_ENVIRONMENT_${upper(local.revision.execution_environment)}"
    max_instance_request_concurrency = local.revision.concurrency
    timeout                          = "${local.revision.timeout_seconds}s"

    # No revision minimum: the service's minimum below covers the revisions that serve traffic, and a
    # tagged revision without traffic (a candidate, a failed one) keeps no idle instance.
    scaling {
      min_instance_count = 0
      max_instance_count = local.revision.scaling.max_instances
    }

    containers {
      image = var.bootstrap_image

      ports {
        container_port = local.revision.container_port
      }

      dynamic "env" {
        for_each = local.revision.env
        content {
          name  = env.key
          value = env.value
        }
      }

      resources {
        limits = {
          cpu    = local.revision.resources.cpu
          memory = local.revision.resources.memory
        }
        cpu_idle          = local.revision.resources.cpu_idle
        startup_cpu_boost = local.revision.resources.cpu_boost
      }

      startup_probe {
        period_seconds    = local.revision.probes.startup.period_seconds
        timeout_seconds   = local.revision.probes.startup.timeout_seconds
        failure_threshold = local.revision.probes.startup.failure_threshold
        http_get {
          path = local.revision.probes.startup.path
        }
      }

      liveness_probe {
        period_seconds    = local.revision.probes.liveness.period_seconds
        timeout_seconds   = local.revision.probes.liveness.timeout_seconds
        failure_threshold = local.revision.probes.liveness.failure_threshold
        http_get {
          path = local.revision.probes.liveness.path
        }
      }
    }
  }

  # The same minimum the pipeline sets with `gcloud run deploy --min`, from the same file, so the two agree.
  scaling {
    min_instance_count = local.revision.scaling.min_instances
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    # Ownership split. Terraform creates the service and owns everything around it: name,
    # region, ingress, IAM, deletion protection. After creation the Cloud Build pipeline owns
    # what it changes on every deploy: the revision template (image, env, probes, scaling,
    # resources, all from deploy/revision.yaml), the traffic split between revisions during a
    # canary, and the client fields gcloud stamps on the service. Without this, every apply
    # would roll production back to the placeholder image and undo the pipeline's traffic
    # split; with it, a configuration change goes through the same gated canary as code.
    ignore_changes = [
      template,
      client,
      client_version,
      traffic,
    ]
  }

  depends_on = [google_project_service.main, google_binary_authorization_policy.main]
}
