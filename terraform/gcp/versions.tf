terraform {
  # 1.5 is the oldest release with `import` blocks, which an operator may need to adopt a
  # database or a service that already exists; 2.x may change the language.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.x: every field used here exists in 7.0, and a major release may rename or drop one.
      version = ">= 7.0.0, < 8.0.0"
    }
  }
}
