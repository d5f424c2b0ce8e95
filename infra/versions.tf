terraform {
  required_version = ">= 1.6"
  backend "gcs" {
    prefix = "keyway"
  }
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "= 6.12.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
