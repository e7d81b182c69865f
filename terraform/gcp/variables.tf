variable "alert_email" {
  type        = string
  description = "Email address the burn-rate and uptime alerts go to (an on-call alias, not a person)."

  validation {
    condition     = can(regex("^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$", var.alert_email))
    error_message = "alert_email must be an email address such as oncall@example.com."
  }
}

variable "availability_goal" {
  type        = number
  description = "Share of requests, over a rolling 28 days, that must not be answered 5xx."
  default     = 0.999

  # The provider documents 0 < goal <= 0.999; below 0.9 an SLO no longer says anything useful.
  validation {
    condition     = var.availability_goal >= 0.9 && var.availability_goal <= 0.999
    error_message = "availability_goal must be between 0.9 and 0.999."
  }
}

variable "bootstrap_image" {
  type        = string
  description = "Image of the service's first revision, until the pipeline deploys a real one. It must answer 200 on the probe paths in deploy/revision.yaml; Google's hello image answers every path."
  default     = "us-docker.pkg.dev/cloudrun/container/hello"

  # A name without tag or digest: Binary Authorization admits it by the pattern "<name>*".
  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$", var.bootstrap_image))
    error_message = "bootstrap_image must name an image as registry/path/image, without a tag or digest."
  }
}

variable "firestore_location" {
  type        = string
  description = "Firestore location: a multi-region (eur3, nam5) for the higher SLA, or a single region such as europe-west1. It cannot change after creation."
  default     = "eur3"

  validation {
    condition     = contains(["eur3", "nam5"], var.firestore_location) || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.firestore_location))
    error_message = "firestore_location must be eur3, nam5 or a region such as europe-west1."
  }
}

variable "github_branch" {
  type        = string
  description = "Branch whose pushes deploy, and which pull requests must target."
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.github_branch))
    error_message = "github_branch must be a branch name such as main."
  }
}

variable "github_connection" {
  type        = string
  description = "Name of the Cloud Build 2nd-gen GitHub connection in var.region, made once by hand (see README.md)."

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.github_connection))
    error_message = "github_connection must be a connection name: lowercase letters, digits and hyphens."
  }
}

variable "github_owner" {
  type        = string
  description = "GitHub user or organisation that owns the repository."

  validation {
    condition     = can(regex("^[A-Za-z0-9]([A-Za-z0-9-]{0,37}[A-Za-z0-9])?$", var.github_owner))
    error_message = "github_owner must be a GitHub user or organisation name."
  }
}

variable "github_repository" {
  type        = string
  description = "Name of the GitHub repository holding this code, without the owner."

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,100}$", var.github_repository))
    error_message = "github_repository must be a repository name such as birthday-api, without the owner."
  }
}

variable "images_to_keep" {
  type        = number
  description = "How many of the newest images Artifact Registry keeps whatever their age: enough for every revision the pipeline may roll back to."
  default     = 30

  validation {
    condition     = var.images_to_keep >= 10 && floor(var.images_to_keep) == var.images_to_keep
    error_message = "images_to_keep must be a whole number of at least 10."
  }
}

variable "latency_goal" {
  type        = number
  description = "Share of requests, over a rolling 28 days, that must be answered faster than latency_threshold_ms."
  default     = 0.99

  validation {
    condition     = var.latency_goal >= 0.9 && var.latency_goal <= 0.999
    error_message = "latency_goal must be between 0.9 and 0.999."
  }
}

variable "latency_threshold_ms" {
  type        = number
  description = "A request answered faster than this many milliseconds counts as fast for the latency SLO."
  default     = 500

  # The app gives up on storage after 3 s and Cloud Run after 10 s: a threshold beyond that
  # would count every request as fast.
  validation {
    condition     = var.latency_threshold_ms > 0 && var.latency_threshold_ms <= 3000
    error_message = "latency_threshold_ms must be more than 0 and at most 3000."
  }
}

variable "project_id" {
  type        = string
  description = "Google Cloud project that holds the whole stack."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the Cloud Run service, the Artifact Registry repository, the Cloud Build triggers and the rollout lock bucket."
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region such as europe-west1."
  }
}

variable "service_name" {
  type        = string
  description = "Name of the Cloud Run service, and the prefix of its repository, service accounts, triggers and bucket. At most 20 characters, so that <name>-pr-checks still fits a service account id."
  default     = "birthday-api"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$", var.service_name))
    error_message = "service_name must be 1 to 20 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen."
  }
}
