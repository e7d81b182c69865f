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

# Every push to the main branch builds, pushes and rolls out through the gated canary in
# cloudbuild.yaml. Two quick pushes start two builds at once: the pipeline's rollout lock
# (rollout_lock.tf) keeps their canaries apart.
resource "google_cloudbuild_trigger" "deploy" {
  project         = var.project_id
  location        = var.region
  name            = "${var.service_name}-deploy"
  description     = "Build ${var.service_name} and roll it out through the gated canary."
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.deployer.id
  substitutions   = local.deploy_substitutions

  repository_event_config {
    repository = google_cloudbuildv2_repository.main.id
    push {
      branch = "^${var.github_branch}$"
    }
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
