# The deployer's custom roles: exactly the permissions the rollout build uses, one role per resource they are
# granted on (iam.tf), each permission with what uses it. tests/test_deployer_permissions.py derives the same
# sets from the gcloud commands and Admin API calls in deploy/ and cloudbuild-rollout.yaml, and fails on any difference.
locals {
  deployer_permissions = {
    # Granted on the project: none of these has a resource of its own below it.
    project = [
      "cloudbuild.builds.get",      # gcloud builds describe: the build to deploy (source step, createTime), this build's timeout
      "logging.logEntries.create",  # the rollout build's own log (options.logging: CLOUD_LOGGING_ONLY)
      "monitoring.timeSeries.list", # the gates: projects.timeSeries.list of the Cloud Run request metrics
      "run.operations.get",         # gcloud run deploy waits on the operation it starts
    ]
    # Granted on the Cloud Run service alone.
    service = [
      "run.services.get",    # the rollout's GET of the service: every read, and polls until a write applies; gcloud run deploy reads it first
      "run.services.update", # gcloud run deploy (a revision) and the rollout's replaceService (traffic, tags) replace the service
    ]
    # Granted on the runtime service account alone.
    runtime_account = [
      "iam.serviceAccounts.actAs", # gcloud run deploy --service-account: every revision runs as the runtime account
    ]
    # Granted on the rollout lock bucket alone.
    lock_bucket = [
      "storage.objects.create", # gcloud storage cp --if-generation-match: take the lock, write the release record
      "storage.objects.delete", # gcloud storage rm --if-generation-match: release exactly the lock taken; cp over an object
      "storage.objects.get",    # gcloud storage objects describe and cat: read the lock and the freeze
    ]
  }
}

resource "google_project_iam_custom_role" "deployer" {
  for_each = local.deployer_permissions

  project     = var.project_id
  role_id     = "${replace(var.service_name, "-", "_")}_deployer_${each.key}"
  title       = "${var.service_name} deployer (${replace(each.key, "_", " ")})"
  description = "What the ${var.service_name} rollout build does on the ${replace(each.key, "_", " ")}; see terraform/gcp/iam_roles.tf."
  permissions = each.value

  depends_on = [google_project_service.main]
}
