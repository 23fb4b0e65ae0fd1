//! What the collector imports from files: contracts ([`contracts`]), the CMMS asset list
//! ([`assets`]), the records both become ([`model`]) and the vendor/model glob patterns they
//! use ([`pattern`]), security advisories in CSAF 2.0 ([`advisories`]) and the CISA Known
//! Exploited Vulnerabilities catalog ([`kev`]), CycloneDX SBOMs of product releases ([`sbom`]), and what every import shares ([`files`]: errors
//! naming file:line:column, UTF-8 reading, CSV with its quoting checked).

pub mod advisories;
pub mod assets;
pub mod contracts;
pub mod eox;
pub mod files;
pub mod kev;
pub mod model;
pub mod pattern;
pub mod sbom;

/// Helpers of the import modules' property tests.
#[cfg(test)]
pub(crate) mod testing {
    /// `text` with `cut` bytes at byte `at` replaced by `junk`: a damaged file for the
    /// "refused, never a panic" properties. Both ends move back to a character boundary
    /// (`str::floor_char_boundary` is newer than the MSRV).
    pub(crate) fn splice(text: &str, at: usize, cut: usize, junk: &str) -> String {
        let floor = |i: usize| {
            let i = i.min(text.len());
            (0..=i)
                .rev()
                .find(|&j| text.is_char_boundary(j))
                .unwrap_or(0)
        };
        let at = floor(at);
        let end = floor(at + cut);
        format!("{}{junk}{}", &text[..at], &text[end..])
    }
}
