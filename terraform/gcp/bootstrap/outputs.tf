output "backend_config" {
  description = "Contents for ../backend.hcl, the partial GCS backend configuration of the main stack."
  value       = "bucket = \"${google_storage_bucket.state.name}\"\nprefix = \"birthday-api\"\n"
}

output "state_bucket" {
  description = "Name of the bucket that holds the main stack's Terraform state."
  value       = google_storage_bucket.state.name
}
