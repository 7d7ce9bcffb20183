//! TEMPORARY local stand-in until the registry reader branch is merged.
use crate::domain::Digest;
use crate::ingest::RegistryApi;
pub struct RegistryReader;
pub struct ImageSource { pub revision: Option<String>, pub source: Option<String> }
#[derive(Debug, thiserror::Error)]
pub enum RegistryError { #[error("{0}")] Transient(String), #[error("{0}")] Permanent(String) }
impl RegistryReader {
    pub fn new(_api: &RegistryApi) -> Result<Self, RegistryError> { Ok(Self) }
    pub async fn image_source(&self, _repository: &str, _digest: &Digest) -> Result<ImageSource, RegistryError> { Err(RegistryError::Permanent("x".into())) }
}
