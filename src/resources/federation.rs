//! The identity a pipeline deploys an environment with (`provision bootstrap`): which federated
//! credential it needs (issuer, subject, audience, matching the CI's OIDC tokens) and which role
//! assignments, least privilege. Pure: the engine reads, compares and writes.
//!
//! - GitHub Actions tokens: issuer `https://token.actions.githubusercontent.com`, subject
//!   `repo:OWNER/REPO:environment:NAME`, `repo:OWNER/REPO:pull_request` or
//!   `repo:OWNER/REPO:ref:refs/heads/BRANCH` (GitHub, "About security hardening with OpenID
//!   Connect", example subject claims). Subjects are compared case-sensitively by Entra.
//! - Azure DevOps workload-identity service connections: issuer
//!   `https://vstoken.dev.azure.com/{organization id}`, subject `sc://ORG/PROJECT/CONNECTION`
//!   (Azure DevOps, "Connect to Azure with an Azure Resource Manager service connection"; the
//!   organization id is shown on the service connection's page and by `az devops invoke`).
//! - Audience `api://AzureADTokenExchange` for both.
//! - Roles on the environment's resource group: Contributor, and Role Based Access Control
//!   Administrator constrained by a condition to assigning and removing Cognitive Services OpenAI
//!   User only (the role `up` gives API Management's identity), as Azure's "Delegate Azure role
//!   assignment management to others with conditions" prescribes.
//!
//! On the sandbox cloud the issuers are the sandbox's own (`{origin}/github-actions`,
//! `{origin}/azure-devops/{organization id}`), with an organization id derived from the name.

use sha2::{Digest, Sha256};

pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const RBAC_ADMINISTRATOR: &str = "f58310d9-a9f6-439a-9e8d-f62e7b41a168";
pub const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// What a GitHub Actions job's subject names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubTrigger {
    Environment(String),
    PullRequest,
    Branch(String),
}

/// The pipeline a deployment identity is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pipeline {
    Github {
        repo: String,
        trigger: GithubTrigger,
    },
    AzureDevops {
        org: String,
        /// The organization's id; required on Azure, derived from `org` on the sandbox.
        org_id: Option<String>,
        project: String,
        connection: String,
    },
}

/// The federated credential a pipeline's tokens match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Graph's `name`: unique per app, URL friendly, at most 120 characters.
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audience: &'static str,
}

/// The issuers a trust names: Azure's, or the sandbox's at `origin`.
#[derive(Debug, Clone, Copy)]
pub enum Issuers<'a> {
    Azure,
    Sandbox { origin: &'a str },
}

/// Why a trust cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrustError(pub String);

impl crate::hint::Remedy for TrustError {
    fn hint(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(
            "the organization id is on the service connection's page in Azure DevOps (Project \
             settings > Service connections > the connection > Edit: 'Issuer' ends in it); pass \
             it with --org-id"
                .into(),
        )
    }
}

/// The organization id the sandbox's Azure DevOps issuer uses for `org`: stable, and the same
/// whatever the case of the name (organization names are case-insensitive).
pub fn organization_id(org: &str) -> String {
    let digest = Sha256::digest(org.to_ascii_lowercase().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl Pipeline {
    /// A pull request's job only plans: its workflow file comes from the branch under review, so
    /// its identity must not be able to change anything (Terraform and Atlantis users keep the
    /// plan and apply identities apart for the same reason).
    pub fn plans_only(&self) -> bool {
        matches!(
            self,
            Pipeline::Github {
                trigger: GithubTrigger::PullRequest,
                ..
            }
        )
    }

    pub fn subject(&self) -> String {
        match self {
            Pipeline::Github { repo, trigger } => match trigger {
                GithubTrigger::Environment(name) => format!("repo:{repo}:environment:{name}"),
                GithubTrigger::PullRequest => format!("repo:{repo}:pull_request"),
                GithubTrigger::Branch(branch) => format!("repo:{repo}:ref:refs/heads/{branch}"),
            },
            Pipeline::AzureDevops {
                org,
                project,
                connection,
                ..
            } => format!("sc://{org}/{project}/{connection}"),
        }
    }

    pub fn trust(&self, issuers: Issuers<'_>) -> Result<Trust, TrustError> {
        let issuer = match (self, issuers) {
            (Pipeline::Github { .. }, Issuers::Azure) => GITHUB_ISSUER.to_owned(),
            (Pipeline::Github { .. }, Issuers::Sandbox { origin }) => {
                format!("{}/github-actions", origin.trim_end_matches('/'))
            }
            (Pipeline::AzureDevops { org_id, .. }, Issuers::Azure) => {
                let id = org_id.as_deref().ok_or_else(|| {
                    TrustError(
                        "bootstrap azure-devops needs --org-id: Azure DevOps' token issuer \
                         names the organization by its id"
                            .to_owned(),
                    )
                })?;
                format!("https://vstoken.dev.azure.com/{id}")
            }
            // The sandbox's issuer names the organization by the id it derives from its name,
            // whatever `--org-id` says: a credential for another id would match none of its tokens.
            (Pipeline::AzureDevops { org, .. }, Issuers::Sandbox { origin }) => format!(
                "{}/azure-devops/{}",
                origin.trim_end_matches('/'),
                organization_id(org)
            ),
        };
        let subject = self.subject();
        Ok(Trust {
            name: credential_name(&subject),
            issuer,
            subject,
            audience: EXCHANGE_AUDIENCE,
        })
    }
}

/// A Graph-safe name for a subject: its letters and digits, `-` for the rest, with a short hash
/// so that two subjects never share a name.
fn credential_name(subject: &str) -> String {
    let mut name: String = subject
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.truncate(100);
    let digest = Sha256::digest(subject.as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{short}", name.trim_matches('-'))
}

/// The pipeline app's `uniqueName`: the API app's, with `-deploy`, or `-plan` for the read-only
/// identity of pull requests.
pub fn deploy_app_name(api_unique_name: &str, plans_only: bool) -> String {
    let role = if plans_only { "plan" } else { "deploy" };
    format!("{api_unique_name}-{role}")
}

/// The condition that lets a role-assignment administrator assign and remove only Cognitive
/// Services OpenAI User.
pub fn delegation_condition() -> String {
    format!(
        "((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/write'}})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{OPENAI_USER}}})) AND ((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/delete'}})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{OPENAI_USER}}}))"
    )
}

/// One role assignment the deployment identity needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: &'static str,
    pub role_name: &'static str,
    pub condition: Option<String>,
}

/// The roles on the resource group: Reader for an identity that only plans; Contributor and the
/// condition-limited role-assignment administrator for one that deploys.
pub fn grants(plans_only: bool) -> Vec<Grant> {
    if plans_only {
        return vec![Grant {
            role: READER,
            role_name: "Reader",
            condition: None,
        }];
    }
    vec![
        Grant {
            role: CONTRIBUTOR,
            role_name: "Contributor",
            condition: None,
        },
        Grant {
            role: RBAC_ADMINISTRATOR,
            role_name: "Role Based Access Control Administrator",
            condition: Some(delegation_condition()),
        },
    ]
}

/// A role assignment's name (a GUID), the same for the same scope, principal and role, so a
/// repeated bootstrap names the assignment it made before.
pub fn assignment_name(scope: &str, principal: &str, role: &str) -> String {
    let digest = Sha256::digest(
        format!(
            "{}|{}|{}",
            scope.to_ascii_lowercase(),
            principal.to_ascii_lowercase(),
            role
        )
        .as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(trigger: GithubTrigger) -> Pipeline {
        Pipeline::Github {
            repo: "Contoso/gw".into(),
            trigger,
        }
    }

    #[test]
    fn trusts_match_the_tokens_each_ci_issues() {
        let prod = github(GithubTrigger::Environment("prod".into()))
            .trust(Issuers::Azure)
            .unwrap();
        assert_eq!(prod.issuer, GITHUB_ISSUER);
        assert_eq!(prod.subject, "repo:Contoso/gw:environment:prod");
        assert_eq!(prod.audience, EXCHANGE_AUDIENCE);
        assert!(prod.name.starts_with("repo-Contoso-gw-environment-prod-"));
        assert!(prod.name.len() <= 120);
        let pr = github(GithubTrigger::PullRequest)
            .trust(Issuers::Sandbox {
                origin: "http://127.0.0.1:7171/",
            })
            .unwrap();
        assert_eq!(
            (pr.issuer.as_str(), pr.subject.as_str()),
            (
                "http://127.0.0.1:7171/github-actions",
                "repo:Contoso/gw:pull_request"
            )
        );
        assert_eq!(
            github(GithubTrigger::Branch("main".into())).subject(),
            "repo:Contoso/gw:ref:refs/heads/main"
        );
        let ado = Pipeline::AzureDevops {
            org: "Contoso".into(),
            org_id: None,
            project: "LLM".into(),
            connection: "prod".into(),
        };
        assert!(ado.trust(Issuers::Azure).is_err(), "Azure needs the org id");
        let sandbox = ado.trust(Issuers::Sandbox { origin: "http://h" }).unwrap();
        assert_eq!(
            sandbox.issuer,
            format!("http://h/azure-devops/{}", organization_id("contoso"))
        );
        assert_eq!(sandbox.subject, "sc://Contoso/LLM/prod");
    }

    #[test]
    fn names_are_stable_and_distinct() {
        assert_eq!(
            credential_name("repo:a/b:pull_request"),
            credential_name("repo:a/b:pull_request")
        );
        assert_ne!(credential_name("repo:a/b:x"), credential_name("repo:a/b-x"));
        assert_eq!(
            assignment_name("/s/RG", "P", CONTRIBUTOR),
            assignment_name("/s/rg", "p", CONTRIBUTOR)
        );
        assert_ne!(
            assignment_name("/s/rg", "p", CONTRIBUTOR),
            assignment_name("/s/rg", "p", RBAC_ADMINISTRATOR)
        );
    }
}
