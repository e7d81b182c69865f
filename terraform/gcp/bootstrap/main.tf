# The one thing the main stack needs before its first `terraform init`: a bucket for its state.
# This module keeps its own (tiny) state locally; README.md says how to move it into the bucket.

resource "google_project_service" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  disable_on_destroy = false
}

# Who read or changed the state, with their identity: state holds every resource id and output.
# Authoritative for Cloud Storage: this replaces whatever audit configuration the project already has for
# storage.googleapis.com (its log types and exempted members) with exactly the one below; the provider has no
# additive form. Before the first apply, look at the project's current one
# (`gcloud projects get-iam-policy <project> --format="yaml(auditConfigs)"`) and add here anything to keep.
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

resource "google_storage_bucket" "state" {
  #checkov:skip=CKV_GCP_62:Every read and write of the state is recorded with the caller's identity by the Data Access audit logs that google_project_iam_audit_config.storage turns on; usage logs would need a second bucket and record less.
  project  = var.project_id
  name     = "${var.project_id}-tfstate"
  location = var.location

  # State holds resource ids and outputs: nobody outside the project's IAM may ever read it.
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Every apply writes a new state object; earlier versions are how a damaged state is restored.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 20
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_project_service.storage]
}
