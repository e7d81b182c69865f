# Four identities, none of them a default service account and none with a key: Cloud Run and Cloud Build
# mint short-lived tokens for them. No basic role (owner, editor, viewer) anywhere. README.md, "Who may do
# what", lists every grant below in one table.

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.service_name}-runtime"
  display_name = "${var.service_name} runtime"
  description  = "What the ${var.service_name} Cloud Run revisions run as: read and write this service's Firestore database."

  depends_on = [google_project_service.main]
}

resource "google_service_account" "builder" {
  project      = var.project_id
  account_id   = "${var.service_name}-builder"
  display_name = "${var.service_name} builder"
  description  = "What the ${var.service_name} build trigger runs as: test, build, push the image. It cannot deploy."

  depends_on = [google_project_service.main]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.service_name}-deployer"
  display_name = "${var.service_name} deployer"
  description  = "What the ${var.service_name} rollout triggers run as: deploy a built image, move traffic, hold the rollout lock."

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

# --- runtime ----------------------------------------------------------------------------------------------------
# The app reads and writes Firestore and nothing else. It logs to stdout, which Cloud Run sends to Cloud
# Logging itself (https://cloud.google.com/run/docs/logging), and it neither traces nor writes metrics
# (create_app turns FastAPI's telemetry off; Cloud Run measures and traces requests on its own), so it
# holds no logging, monitoring or trace role.

# Firestore IAM has no resource below the project in the provider, so the grant is made on the project and
# narrowed by an IAM condition to this database: Firestore evaluates conditions on the database's resource
# name (https://cloud.google.com/firestore/docs/manage-databases, per-database access), and document paths
# under it are covered too, in case a check names the document rather than the database.
resource "google_project_iam_member" "runtime_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.runtime.member

  condition {
    title       = "${var.service_name} database only"
    description = "Only the Firestore database the ${var.service_name} revisions are configured to use."
    expression  = "resource.name == \"${local.firestore_database_name}\" || resource.name.startsWith(\"${local.firestore_database_name}/\")"
  }
}

# --- builder ----------------------------------------------------------------------------------------------------

# A build run as a user-specified service account writes its log to Cloud Logging; no narrower resource.
resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}

# Cloud Build pushes `images:` as the build's identity. Writer, not admin: it cannot delete or move a tag.
resource "google_artifact_registry_repository_iam_member" "builder" {
  project    = var.project_id
  location   = google_artifact_registry_repository.main.location
  repository = google_artifact_registry_repository.main.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

# --- deployer ---------------------------------------------------------------------------------------------------
# Custom roles with exactly what the rollout build does, one per resource they are granted on
# (iam_roles.tf). No predefined role fits: roles/run.developer would also let it delete the service, which
# deletion_protection stops only when Terraform is the one deleting.

resource "google_project_iam_member" "deployer" {
  project = var.project_id
  role    = google_project_iam_custom_role.deployer["project"].name
  member  = google_service_account.deployer.member
}

resource "google_cloud_run_v2_service_iam_member" "deployer" {
  project  = var.project_id
  location = google_cloud_run_v2_service.main.location
  name     = google_cloud_run_v2_service.main.name
  role     = google_project_iam_custom_role.deployer["service"].name
  member   = google_service_account.deployer.member
}

# A revision can only be deployed to run as an identity the deployer may act as: this one alone.
resource "google_service_account_iam_member" "deployer_acts_as_runtime" {
  service_account_id = google_service_account.runtime.name
  role               = google_project_iam_custom_role.deployer["runtime_account"].name
  member             = google_service_account.deployer.member
}

resource "google_storage_bucket_iam_member" "deployer" {
  bucket = google_storage_bucket.rollout_lock.name
  role   = google_project_iam_custom_role.deployer["lock_bucket"].name
  member = google_service_account.deployer.member
}

# --- pull-request checks ------------------------------------------------------------------------------------------

resource "google_project_iam_member" "pr_checks" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.pr_checks.member
}

# --- anyone -------------------------------------------------------------------------------------------------------

# The API is public by design: anyone may store and read birthdays.
resource "google_cloud_run_v2_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:The Birthday API is a public API by design: anyone may call it without signing in, so allUsers must hold run.invoker.
  project  = var.project_id
  location = google_cloud_run_v2_service.main.location
  name     = google_cloud_run_v2_service.main.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
