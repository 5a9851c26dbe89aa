variable "name" {
  description = "Name prefix: org KEY's role is NAME-KEY."
  type        = string
}

variable "oidc_provider_arn" {
  description = "The EKS cluster's IAM OIDC provider ARN."
  type        = string
}

variable "namespace" {
  description = "Namespace of the CronJobs' ServiceAccounts."
  type        = string
}

variable "service_accounts" {
  description = "The ServiceAccount of each org's CronJob, by org key."
  type        = map(string)
}

variable "job_policy_arns" {
  description = "Each org's policy (the archive module's job_policy_arns)."
  type        = map(string)
}
