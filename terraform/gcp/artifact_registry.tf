resource "google_artifact_registry_repository" "main" {
  #checkov:skip=CKV_GCP_84:The images hold the app code and public dependencies, never user data; Google-managed encryption at rest is enough, and a customer key would add a KMS key whose loss or disablement makes every rollback image unpullable.
  project       = var.project_id
  location      = var.region
  repository_id = var.service_name
  format        = "DOCKER"
  description   = "Images of ${var.service_name}, pushed by the Cloud Build pipeline."

  # A tag (the commit SHA) names one image forever, so a rollback redeploys what was tested.
  docker_config {
    immutable_tags = true
  }

  # INHERITED scans every pushed image while containerscanning.googleapis.com is on.
  vulnerability_scanning_config {
    enablement_config = "INHERITED"
  }

  cleanup_policy_dry_run = false

  # KEEP wins over DELETE: the newest images stay whatever their age, so every revision the
  # pipeline could roll back to still has its image.
  cleanup_policies {
    id     = "keep-rollback-window"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.images_to_keep
    }
  }

  # Layers of failed or interrupted pushes: nothing deploys an untagged image.
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s" # 7 days
    }
  }

  cleanup_policies {
    id     = "delete-old-tagged"
    action = "DELETE"
    condition {
      tag_state  = "TAGGED"
      older_than = "7776000s" # 90 days
    }
  }

  depends_on = [google_project_service.main]
}
