locals {
  apis = [
    "artifactregistry.googleapis.com",
    "binaryauthorization.googleapis.com", # only images this pipeline built may run
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com", # project IAM grants
    "cloudtrace.googleapis.com",           # Cloud Run traces requests itself; the logs correlate with its traces
    "containerscanning.googleapis.com",    # Artifact Registry vulnerability scanning
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com", # the cloud-builds topic that starts a rollout
    "run.googleapis.com",
    "secretmanager.googleapis.com", # where a Cloud Build GitHub connection keeps its token
    "storage.googleapis.com",       # the rollout lock bucket
  ]
}

resource "google_project_service" "main" {
  for_each = toset(local.apis)

  project = var.project_id
  service = each.value

  # Turning an API off would break whatever else in the project uses it, and would make a
  # destroy-and-recreate of this stack take the project's other workloads down with it.
  disable_on_destroy         = false
  disable_dependent_services = false
}
