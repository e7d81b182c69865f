# The pipeline takes a per-service lock here (an object created with ifGenerationMatch=0)
# so two rollouts never shift traffic at once, and an operator can freeze deploys by
# creating a freeze object. Nothing else lives in this bucket.
resource "google_storage_bucket" "rollout_lock" {
  #checkov:skip=CKV_GCP_62:The bucket holds only lock and freeze markers, no data; object versioning keeps every lock ever taken, and the Data Access audit logs that ./bootstrap turns on for Cloud Storage record each access with the caller's identity, which usage logs (and the second bucket they need) would not add.
  project  = var.project_id
  name     = "${var.project_id}-${var.service_name}-rollout"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Old lock and freeze objects show who held the lock and when.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.main]
}
