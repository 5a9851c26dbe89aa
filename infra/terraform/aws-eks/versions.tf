terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      # Within 5.x: a new major version (6.0) changes resources this configuration uses.
      source  = "hashicorp/aws"
      version = "~> 5.40"
    }
  }
  # State: copy backend.tf.example to backend.tf and fill it in (a bucket you already have).
}

provider "aws" {
  region = var.region
}
