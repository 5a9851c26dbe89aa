# `terraform test` (offline: a mocked AWS provider): the ECS path plans; secrets given as ECS
# references with a JSON key (ARN:client_id::) reach the execution role as the secret's ARN; the
# alert topic is encrypted with the customer-managed key whose policy grants EventBridge.

mock_provider "aws" {
  # Mocked values already at plan (Terraform 1.11+), so nothing is "applied" and prevent_destroy holds.
  override_during = plan
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::my-flow-backups", bucket = "my-flow-backups" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-west-2:123456789012:key/k" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/flowvault-job" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/flowvault" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:us-west-2:123456789012:cluster/flowvault" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:us-west-2:123456789012:task-definition/flowvault-acme:1"
      arn_without_revision = "arn:aws:ecs:us-west-2:123456789012:task-definition/flowvault-acme"
    }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-west-2:123456789012:flowvault-alerts" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-west-2:123456789012:flowvault-undelivered", id = "https://sqs.us-west-2.amazonaws.com/123456789012/flowvault-undelivered" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-west-2:123456789012:rule/flowvault-failed-run" }
  }
}

variables {
  bucket_name = "my-flow-backups"
  image       = "ghcr.io/flowvault/flowvault:0.1.0@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  orgs = {
    acme = {
      genesys_org              = "acme"
      client_id_secret_arn     = "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf:client_id::"
      client_secret_secret_arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf:client_secret::"
    }
  }
  subnet_ids         = ["subnet-0123456789abcdef0"]
  security_group_ids = ["sg-0123456789abcdef0"]
}

run "the_ecs_path_plans_and_reads_secrets_given_with_a_json_key" {
  command = plan

  assert {
    condition = module.ecs.execution_secret_resources == [
      "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf",
      "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf-??????",
    ]
    error_message = "the execution role reads the secret itself, not ECS's ARN:json-key:: reference"
  }
  assert {
    condition     = module.ecs.alerts_key_arn == "arn:aws:kms:us-west-2:123456789012:key/k"
    error_message = "the alert topic is encrypted with the customer-managed key (not alias/aws/sns)"
  }
  assert {
    condition     = output.destinations["acme"] == "s3://my-flow-backups/genesys/acme"
    error_message = "org acme writes under genesys/acme"
  }
}

run "an_image_without_a_digest_is_refused" {
  command = plan
  variables {
    image = "ghcr.io/flowvault/flowvault:0.1.0"
  }
  expect_failures = [var.image]
}
