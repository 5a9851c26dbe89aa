variable "eks_oidc_provider_arn" {
  description = "The EKS cluster's IAM OIDC provider ARN (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID)."
  type        = string
}

variable "k8s_namespace" {
  description = "Namespace of the CronJobs' ServiceAccounts."
  type        = string
  default     = "flowvault"
}

variable "orgs" {
  description = "One IRSA role per org key, trusted by that org's ServiceAccount only (default flowvault-KEY, as infra/k8s/orgs/KEY names it) and allowed only PREFIX/KEY/."
  type = map(object({
    service_account = optional(string)
  }))
  validation {
    condition     = length(var.orgs) > 0
    error_message = "orgs needs at least one org key, e.g. { acme = {} }."
  }
}
