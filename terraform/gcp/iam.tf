# Three identities, none of them a default service account and none with a key: Cloud Run and
# Cloud Build mint short-lived tokens for them. No basic role (owner, editor, viewer) anywhere.

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.service_name}-runtime"
  display_name = "${var.service_name} runtime"
  description  = "What the ${var.service_name} Cloud Run revisions run as: Firestore data, logs, metrics, traces."

  depends_on = [google_project_service.main]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.service_name}-deployer"
  display_name = "${var.service_name} deployer"
  description  = "What the ${var.service_name} main-branch Cloud Build trigger runs as: push, deploy, shift traffic."

  depends_on = [google_project_service.main]
}

# Pull requests run code nobody has reviewed yet, so they get an identity that can do nothing
# but write their own build log.
resource "google_service_account" "pr_checks" {
  project      = var.project_id
  account_id   = "${var.service_name}-pr-checks"
  display_name = "${var.service_name} pull-request checks"
  description  = "What the ${var.service_name} pull-request Cloud Build trigger runs as: tests only."

  depends_on = [google_project_service.main]
}

locals {
  # Firestore IAM has no resource below the project in the provider. An IAM condition on
  # resource.name == "projects/<project>/databases/<database>" could narrow datastore.user to
  # one database; it is left out because the app uses the project's only database.
  runtime_project_roles = [
    "roles/cloudtrace.agent",
    "roles/datastore.user",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
  ]

  # Neither role can be granted below the project: the rollout gates read Cloud Run metrics,
  # and a build run as a user-specified service account writes its log to Cloud Logging.
  deployer_project_roles = [
    "roles/logging.logWriter",
    "roles/monitoring.viewer",
  ]
}

resource "google_project_iam_member" "runtime" {
  for_each = toset(local.runtime_project_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.runtime.member
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_project_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer.member
}

resource "google_project_iam_member" "pr_checks" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.pr_checks.member
}

# Deploy revisions and move traffic on this one service; nothing else in Cloud Run.
resource "google_cloud_run_v2_service_iam_member" "deployer" {
  project  = var.project_id
  location = google_cloud_run_v2_service.main.location
  name     = google_cloud_run_v2_service.main.name
  role     = "roles/run.developer"
  member   = google_service_account.deployer.member
}

# A revision can only be deployed to run as an identity the deployer may act as: this one alone.
resource "google_service_account_iam_member" "deployer_acts_as_runtime" {
  service_account_id = google_service_account.runtime.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

resource "google_artifact_registry_repository_iam_member" "deployer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.main.location
  repository = google_artifact_registry_repository.main.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer.member
}

# Create and delete the lock and freeze objects; no bucket-level or IAM permission.
resource "google_storage_bucket_iam_member" "deployer" {
  bucket = google_storage_bucket.rollout_lock.name
  role   = "roles/storage.objectUser"
  member = google_service_account.deployer.member
}

# The API is public by design: anyone may store and read birthdays.
resource "google_cloud_run_v2_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:The Birthday API is a public API by design: anyone may call it without signing in, so allUsers must hold run.invoker.
  project  = var.project_id
  location = google_cloud_run_v2_service.main.location
  name     = google_cloud_run_v2_service.main.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
