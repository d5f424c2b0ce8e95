variable "project" {
  description = "GCP project id keyway deploys into."
  type        = string
}

variable "region" {
  description = "Region for Cloud Functions, Pub/Sub and KMS."
  type        = string
  default     = "europe-west1"
}

variable "source_dir" {
  description = "Folder with one <function>.zip per function (python -m keyway.package)."
  type        = string
  default     = "../dist"
}
