resource "google_firestore_database" "main" {
  project     = var.project_id
  name        = local.firestore_database
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  concurrency_mode            = "OPTIMISTIC"
  app_engine_integration_mode = "DISABLED"

  # Seven days of versions to read from or restore after a bad write or a bad deploy.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  # Refuses deletion from anywhere (console, gcloud, API), not only from Terraform.
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  # A destroy forgets the database instead of dropping every stored birthday.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.main]
}

# PITR covers seven days; backups cover mistakes found later. Firestore caps the retention at
# 7 days for daily schedules and 14 weeks for weekly ones.
resource "google_firestore_backup_schedule" "daily" {
  project   = var.project_id
  database  = google_firestore_database.main.name
  retention = "604800s" # 7 days

  daily_recurrence {}
}

resource "google_firestore_backup_schedule" "weekly" {
  project   = var.project_id
  database  = google_firestore_database.main.name
  retention = "8467200s" # 14 weeks

  weekly_recurrence {
    day = "SUNDAY"
  }
}
