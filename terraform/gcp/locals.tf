locals {
  # The one source of what every revision runs with; the pipeline reads the same file.
  revision = yamldecode(file("${path.module}/../../deploy/revision.yaml"))

  # The database the app is told to use is the database this stack creates.
  firestore_database = local.revision.env.BIRTHDAY_FIRESTORE_DATABASE

  artifact_registry_url = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.main.repository_id}"

  # What cloudbuild.yaml reads. Kept here, in one map, so the trigger and the tests of the
  # pipeline agree on the names.
  bootstrap_revision = "${var.service_name}-bootstrap"

  deploy_substitutions = {
    _BOOTSTRAP_REVISION      = local.bootstrap_revision
    _LOCK_BUCKET             = google_storage_bucket.rollout_lock.name
    _REGION                  = var.region
    _REPOSITORY              = google_artifact_registry_repository.main.repository_id
    _RUNTIME_SERVICE_ACCOUNT = google_service_account.runtime.email
    _SERVICE                 = google_cloud_run_v2_service.main.name
  }
}
