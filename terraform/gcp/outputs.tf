output "artifact_registry_url" {
  description = "Docker repository the pipeline pushes to, as used in image names: <region>-docker.pkg.dev/<project>/<repository>."
  value       = local.artifact_registry_url
}

output "build_trigger_id" {
  description = "Id of the Cloud Build trigger that tests, builds and attests every push to the main branch."
  value       = google_cloudbuild_trigger.build.trigger_id
}

output "builder_service_account_email" {
  description = "Service account the build trigger runs as: it pushes images and cannot deploy."
  value       = google_service_account.builder.email
}

output "deployer_service_account_email" {
  description = "Service account the rollout triggers run as."
  value       = google_service_account.deployer.email
}

output "firestore_database" {
  description = "Firestore database id the service uses."
  value       = google_firestore_database.main.name
}

output "pr_checks_service_account_email" {
  description = "Service account the pull-request trigger runs as; it can only write build logs."
  value       = google_service_account.pr_checks.email
}

output "pull_request_trigger_id" {
  description = "Id of the Cloud Build trigger that tests pull requests."
  value       = google_cloudbuild_trigger.pull_request.trigger_id
}

output "rollout_lock_bucket" {
  description = "Bucket holding the pipeline's per-service rollout lock and deploy freeze flag."
  value       = google_storage_bucket.rollout_lock.name
}

output "rollout_manual_trigger_name" {
  description = "Trigger an operator runs to roll one build out by hand: gcloud builds triggers run <name> --sha=<commit> --substitutions=_SOURCE_BUILD=<build id>."
  value       = google_cloudbuild_trigger.rollout_manual.name
}

output "rollout_substitutions" {
  description = "Substitutions both rollout triggers pass to cloudbuild-rollout.yaml."
  value       = local.rollout_substitutions
}

output "rollout_trigger_id" {
  description = "Id of the Cloud Build trigger that rolls out every successful build."
  value       = google_cloudbuild_trigger.rollout.trigger_id
}

output "runtime_service_account_email" {
  description = "Service account every revision of the service runs as."
  value       = google_service_account.runtime.email
}

output "service_url" {
  description = "HTTPS URL of the Cloud Run service."
  value       = google_cloud_run_v2_service.main.uri
}
