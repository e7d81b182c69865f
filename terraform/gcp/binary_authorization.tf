# Only images this pipeline built can run. Cloud Build signs an attestation with the built-by-cloud-build
# attestor for every image it pushes through a build's `images:` field, once that build has passed
# (https://cloud.google.com/binary-authorization/docs/deploy-cloud-build). The service requires the project's
# policy (cloud_run.tf, binary_authorization.use_default; Cloud Run's support:
# https://cloud.google.com/binary-authorization/docs/run/enabling-binauthz-cloud-run), so Cloud Run refuses to
# create a revision from any other image: one pushed by hand, built elsewhere, or from another project.
#
# The policy is the project's singleton (google_binary_authorization_policy): every Cloud Run service and GKE
# cluster in the project that enables Binary Authorization is judged by it.
resource "google_binary_authorization_policy" "main" {
  project     = var.project_id
  description = "Only images Cloud Build built and attested in this project; ${var.service_name}'s placeholder for its first revision."

  # Google's own system images (for GKE) stay exempt; they never run on this service.
  global_policy_evaluation_mode = "ENABLE"

  # The first revision, created by Terraform before the pipeline has built anything, runs Google's placeholder.
  # "*" matches its tags and digests (name:tag, name@sha256:...), never a path below it.
  admission_whitelist_patterns {
    name_pattern = "${var.bootstrap_image}*"
  }

  default_admission_rule {
    evaluation_mode  = "REQUIRE_ATTESTATION"
    enforcement_mode = "ENFORCED_BLOCK_AND_AUDIT_LOG"
    # Cloud Build creates this attestor in the project with its first build that pushes an image.
    require_attestations_by = ["projects/${var.project_id}/attestors/built-by-cloud-build"]
  }

  depends_on = [google_project_service.main]
}
