//! Server-side apply of desired objects and of custom resources' status with the operator's
//! one field manager, and the controller owner reference every child carries. Shared by the
//! reconcilers; the only place that spells the apply parameters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::names;

/// Server-side applies `obj` in `namespace` (forcing conflicts: the operator owns what it
/// sets) and returns the object as the API server has it.
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
}

/// Server-side applies `status` as the status of the custom resource `name` of `kind`, so that
/// map keys and list entries dropped from it disappear. A resource deleted meanwhile (its
/// namespace going away, say) has nothing left to report on: not an error.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    status: &S,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = Patch::Apply(serde_json::json!({
        "apiVersion": strata_api::API_VERSION,
        "kind": kind,
        "status": status,
    }));
    match api
        .patch_status(
            name,
            &PatchParams::apply(names::FIELD_MANAGER).force(),
            &patch,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// `obj` with `owner` as its only (controller) owner reference.
pub fn owned<K: Resource>(mut obj: K, owner: &OwnerReference) -> K {
    obj.meta_mut().owner_references = Some(vec![owner.clone()]);
    obj
}
