provider "google" {
  project = var.project_id

  default_labels = {
    app        = "birthday-api"
    managed-by = "terraform"
  }
}
