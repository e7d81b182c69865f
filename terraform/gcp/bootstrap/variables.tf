variable "location" {
  type        = string
  description = "Location of the state bucket: a multi-region (EU, US, ASIA) or a region such as europe-west1."
  default     = "EU"

  validation {
    condition     = contains(["ASIA", "EU", "US"], var.location) || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.location))
    error_message = "location must be EU, US, ASIA or a region such as europe-west1."
  }
}

variable "project_id" {
  type        = string
  description = "Google Cloud project that holds the whole stack, and its state bucket."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}
