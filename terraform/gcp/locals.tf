locals {
  # The one source of what every revision runs with; the pipeline reads the same file.
  revision = yamldecode(file("${path.module}/../../deploy/revision.yaml"))

  # The database the app is told to use is the database this stack creates.
  firestore_database      = local.revision.env.BIRTHDAY_FIRESTORE_DATABASE
  firestore_database_name = "projects/${var.project_id}/databases/${google_firestore_database.main.name}"

  artifact_registry_url = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.main.repository_id}"

  # A fixed name tells the pipeline that the placeholder revision is no baseline for a canary.
  bootstrap_revision = "${var.service_name}-bootstrap"

  # What the triggers pass to cloudbuild.yaml and cloudbuild-rollout.yaml; tests/test_cloudbuild.py checks each
  # against the substitutions its file declares.
  build_substitutions = {
    _REGION     = var.region
    _REPOSITORY = google_artifact_registry_repository.main.repository_id
    _SERVICE    = google_cloud_run_v2_service.main.name
  }

  rollout_substitutions = {
    _BOOTSTRAP_REVISION      = local.bootstrap_revision
    _BUILD_TRIGGER_ID        = google_cloudbuild_trigger.build.trigger_id
    _LOCK_BUCKET             = google_storage_bucket.rollout_lock.name
    _REGION                  = var.region
    _REPOSITORY              = google_artifact_registry_repository.main.repository_id
    _RUNTIME_SERVICE_ACCOUNT = google_service_account.runtime.email
    _SERVICE                 = google_cloud_run_v2_service.main.name
  }

  # Payload bindings: fields of the Build resource that Cloud Build publishes on the cloud-builds topic
  # (https://cloud.google.com/build/docs/configuring-builds/use-bash-and-bindings-in-substitutions).
  build_notice_bindings = {
    _SOURCE_BUILD   = "$(body.message.data.id)"
    _SOURCE_STATUS  = "$(body.message.data.status)"
    _SOURCE_TRIGGER = "$(body.message.data.buildTriggerId)"
  }
}
