# One IRSA role per org, trusted by exactly that org's ServiceAccount (StringEquals, no wildcard)
# and holding only that org's policy.

locals {
  oidc_issuer = replace(var.oidc_provider_arn, "/^.*oidc-provider\\//", "")
}

resource "aws_iam_role" "org" {
  for_each = var.service_accounts
  name     = "${var.name}-${each.key}"
  assume_role_policy = templatefile("${path.module}/irsa-trust.json.tftpl", {
    oidc_provider_arn = var.oidc_provider_arn
    oidc_issuer       = local.oidc_issuer
    namespace         = var.namespace
    service_account   = each.value
  })
}

resource "aws_iam_role_policy_attachment" "org" {
  for_each   = var.service_accounts
  role       = aws_iam_role.org[each.key].name
  policy_arn = var.job_policy_arns[each.key]
}
