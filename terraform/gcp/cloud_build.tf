# The GitHub connection itself (a Cloud Build 2nd-gen host connection) needs a person to
# authorise the Cloud Build GitHub App in a browser, so it is made once by hand (README.md)
# and named here by var.github_connection. Everything from the repository link on is code.
resource "google_cloudbuildv2_repository" "main" {
  project           = var.project_id
  location          = var.region
  name              = var.github_repository
  parent_connection = var.github_connection
  remote_uri        = "https://github.com/${var.github_owner}/${var.github_repository}.git"

  depends_on = [google_project_service.main]
}

# Delivery is two builds. Cloud Build attests an image only once the build that pushed it through `images:`
# has finished, so the build that makes the image cannot also deploy it under Binary Authorization:
#   build   (cloudbuild.yaml, as the builder): test, build, push, provenance, attestation; deploys nothing;
#   rollout (cloudbuild-rollout.yaml, as the deployer): deploys that attested image through the gated canary,
#           started by Cloud Build's own notice that the build succeeded.
# A build's result is then always about its own work: a red build never deployed, and a rollout's result is
# what production runs.

# Every push to the main branch is built and, if it passes, attested.
resource "google_cloudbuild_trigger" "build" {
  project         = var.project_id
  location        = var.region
  name            = "${var.service_name}-build"
  description     = "Test and build ${var.service_name}; push and attest the image. Its success starts the rollout."
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.builder.id
  substitutions   = local.build_substitutions

  repository_event_config {
    repository = google_cloudbuildv2_repository.main.id
    push {
      branch = "^${var.github_branch}$"
    }
  }
}

# Cloud Build publishes every build's changes of state to the topic of this name, when it exists
# (https://cloud.google.com/build/docs/subscribe-build-notifications).
resource "google_pubsub_topic" "cloud_builds" {
  #checkov:skip=CKV_GCP_83:The messages are Cloud Build's own build records (ids, status, substitutions), which Cloud Build's API already shows to anyone who may read builds; a customer-managed key would add a KMS key whose loss stops every rollout.
  project = var.project_id
  name    = "cloud-builds"

  # Long enough to outlast a Cloud Build outage; a rollout started days late is refused anyway if main moved.
  message_retention_duration = "86400s"

  depends_on = [google_project_service.main]
}

# A build of the build trigger succeeded: roll its image out. The filter reads the notice; what is deployed is
# checked again against Cloud Build's own record of the build (cloudbuild-rollout.yaml, step `source`).
# Two successes close together start two rollouts: the rollout lock (rollout_lock.tf) keeps them apart, and a
# rollout whose commit is no longer the head of the branch refuses to deploy it.
resource "google_cloudbuild_trigger" "rollout" {
  project         = var.project_id
  location        = var.region
  name            = "${var.service_name}-rollout"
  description     = "Roll a successful ${var.service_name} build out through the gated canary."
  service_account = google_service_account.deployer.id
  substitutions   = merge(local.rollout_substitutions, local.build_notice_bindings)
  filter          = "_SOURCE_STATUS == \"SUCCESS\" && _SOURCE_TRIGGER == \"${google_cloudbuild_trigger.build.trigger_id}\""

  pubsub_config {
    topic = google_pubsub_topic.cloud_builds.id
  }

  source_to_build {
    repository = google_cloudbuildv2_repository.main.id
    ref        = "refs/heads/${var.github_branch}"
    repo_type  = "GITHUB"
  }

  git_file_source {
    path       = "cloudbuild-rollout.yaml"
    repository = google_cloudbuildv2_repository.main.id
    revision   = "refs/heads/${var.github_branch}"
    repo_type  = "GITHUB"
  }
}

# The same rollout, run by hand for one build at its own commit: a re-run, or a roll-back by redeploying an
# older commit (docs/operations.md). `gcloud builds triggers run <service>-rollout-manual --sha=<commit>
# --substitutions=_SOURCE_BUILD=<build id>`.
resource "google_cloudbuild_trigger" "rollout_manual" {
  project         = var.project_id
  location        = var.region
  name            = "${var.service_name}-rollout-manual"
  description     = "Roll one ${var.service_name} build out by hand (_SOURCE_BUILD), at its commit (--sha)."
  service_account = google_service_account.deployer.id
  substitutions   = local.rollout_substitutions

  source_to_build {
    repository = google_cloudbuildv2_repository.main.id
    ref        = "refs/heads/${var.github_branch}"
    repo_type  = "GITHUB"
  }

  git_file_source {
    path       = "cloudbuild-rollout.yaml"
    repository = google_cloudbuildv2_repository.main.id
    revision   = "refs/heads/${var.github_branch}"
    repo_type  = "GITHUB"
  }
}

# Pull requests run the tests only, as an identity that cannot deploy: a pull request from a
# fork must not be able to reach production. Outside contributors need a maintainer's
# /gcbrun comment before their code runs at all.
resource "google_cloudbuild_trigger" "pull_request" {
  project         = var.project_id
  location        = var.region
  name            = "${var.service_name}-pull-request"
  description     = "Run the ${var.service_name} tests on every pull request."
  filename        = "cloudbuild-pr.yaml"
  service_account = google_service_account.pr_checks.id

  repository_event_config {
    repository = google_cloudbuildv2_repository.main.id
    pull_request {
      branch          = "^${var.github_branch}$"
      comment_control = "COMMENTS_ENABLED_FOR_EXTERNAL_CONTRIBUTORS_ONLY"
    }
  }
}
