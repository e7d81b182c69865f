# Partial configuration: the bucket differs per project, so it is given at init time
# (`terraform init -backend-config=backend.hcl`, see README.md). The bucket itself comes from
# ./bootstrap, which must run first.
terraform {
  backend "gcs" {}
}
