//! Container exclusion in `DD_CONTAINER_INCLUDE` / `DD_CONTAINER_EXCLUDE` syntax.
//!
//! Mirrors the Datadog Agent's `pkg/util/containers` filter
//! (<https://docs.datadoghq.com/containers/guide/container-discovery-management/>):
//!
//! - Rules are `name:<regex>`, `image:<regex>` or `kube_namespace:<regex>`, separated by
//!   spaces in the environment variables. Regexes are unanchored (`name:web` matches
//!   `my-web-1`; write `^web$` for an exact match).
//! - Any include rule that matches beats every exclude rule.
//! - An empty field (no image, no namespace) never matches a rule.
//! - The legacy `DD_AC_INCLUDE` / `DD_AC_EXCLUDE` lists are used only when the
//!   corresponding new list is empty.
//! - An invalid regex is an error naming the rule; an unknown prefix is ignored with a
//!   warning (kept in [`ContainerFilter::warnings`]), as the Agent does.

use regex::Regex;

/// An invalid filter rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The rule's regex does not compile.
    #[error("container filter {rule:?}: invalid regex {pattern:?}: {message}")]
    InvalidRegex {
        /// The whole rule, e.g. `name:web[`.
        rule: String,
        /// The regex part.
        pattern: String,
        /// The regex engine's message.
        message: String,
    },
}

#[derive(Clone, Debug, Default)]
struct Rules {
    name: Vec<Regex>,
    image: Vec<Regex>,
    namespace: Vec<Regex>,
}

impl Rules {
    fn parse(rules: &[String], warnings: &mut Vec<String>) -> Result<Self, FilterError> {
        let mut out = Rules::default();
        for rule in rules {
            let (list, pattern) = if let Some(p) = rule.strip_prefix("name:") {
                (&mut out.name, p)
            } else if let Some(p) = rule.strip_prefix("image:") {
                (&mut out.image, p)
            } else if let Some(p) = rule.strip_prefix("kube_namespace:") {
                (&mut out.namespace, p)
            } else {
                warnings.push(format!(
                    "container filter {rule:?} is unknown, ignoring it; the supported filters are 'name:', 'image:' and 'kube_namespace:'"
                ));
                continue;
            };
            let re = Regex::new(pattern).map_err(|e| FilterError::InvalidRegex {
                rule: rule.clone(),
                pattern: pattern.to_owned(),
                message: e.to_string(),
            })?;
            list.push(re);
        }
        Ok(out)
    }

    fn matches(&self, name: &str, image: &str, namespace: &str) -> bool {
        let any =
            |res: &[Regex], field: &str| !field.is_empty() && res.iter().any(|r| r.is_match(field));
        any(&self.name, name) || any(&self.image, image) || any(&self.namespace, namespace)
    }

    fn is_empty(&self) -> bool {
        self.name.is_empty() && self.image.is_empty() && self.namespace.is_empty()
    }
}

/// A compiled include/exclude filter.
///
/// ```
/// use meshmon_core::autodiscovery::filter::{parse_rule_list, ContainerFilter};
///
/// let f = ContainerFilter::new(
///     &parse_rule_list("kube_namespace:^istio-system$"),
///     &parse_rule_list("name:.* image:pause"),
/// )?;
/// assert!(!f.is_excluded("discovery", "istio/pilot:1.20", "istio-system")); // include wins
/// assert!(f.is_excluded("web", "nginx", "default"));
/// # Ok::<(), meshmon_core::autodiscovery::filter::FilterError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContainerFilter {
    include: Rules,
    exclude: Rules,
    warnings: Vec<String>,
}

/// Splits a `DD_CONTAINER_EXCLUDE`-style value into rules (whitespace separated).
pub fn parse_rule_list(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

impl ContainerFilter {
    /// A filter from include and exclude rules.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        let mut warnings = Vec::new();
        let include = Rules::parse(include, &mut warnings)?;
        let exclude = Rules::parse(exclude, &mut warnings)?;
        Ok(ContainerFilter {
            include,
            exclude,
            warnings,
        })
    }

    /// A filter from the Agent's four settings: `container_include`/`container_exclude`
    /// (`DD_CONTAINER_INCLUDE`/`_EXCLUDE`), falling back to the legacy `ac_include` /
    /// `ac_exclude` (`DD_AC_INCLUDE`/`_EXCLUDE`) only where the new list is empty.
    pub fn from_settings(
        container_include: &[String],
        container_exclude: &[String],
        ac_include: &[String],
        ac_exclude: &[String],
    ) -> Result<Self, FilterError> {
        let include = if container_include.is_empty() {
            ac_include
        } else {
            container_include
        };
        let exclude = if container_exclude.is_empty() {
            ac_exclude
        } else {
            container_exclude
        };
        Self::new(include, exclude)
    }

    /// Whether a container (or a service, with empty name and image) is excluded.
    pub fn is_excluded(&self, name: &str, image: &str, namespace: &str) -> bool {
        if self.include.matches(name, image, namespace) {
            return false;
        }
        self.exclude.matches(name, image, namespace)
    }

    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Rules that were ignored, and why.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Vec<String> {
        parse_rule_list(s)
    }

    #[test]
    fn unanchored_regexes_per_field() {
        let f = ContainerFilter::new(
            &[],
            &l("name:web image:^docker.io/pause kube_namespace:kube-"),
        )
        .unwrap();
        assert!(f.is_excluded("my-web-1", "nginx", "default"));
        assert!(f.is_excluded("x", "docker.io/pause:3.9", "default"));
        assert!(!f.is_excluded("x", "registry/docker.io/pause", "default"));
        assert!(f.is_excluded("x", "y", "kube-system"));
        assert!(!f.is_excluded("api", "nginx", "default"));
    }

    #[test]
    fn include_beats_exclude() {
        let f = ContainerFilter::new(&l("image:istio/"), &l("name:.*")).unwrap();
        assert!(!f.is_excluded("discovery", "docker.io/istio/pilot", "istio-system"));
        assert!(f.is_excluded("discovery", "other", "istio-system"));
    }

    #[test]
    fn empty_fields_never_match() {
        let f =
            ContainerFilter::new(&l("image:.*"), &l("name:.* image:.* kube_namespace:.*")).unwrap();
        // the include `image:.*` cannot save a container with no image...
        assert!(f.is_excluded("c", "", ""));
        // ...and a service (no name, no image) is matched by namespace only
        let g = ContainerFilter::new(&[], &l("name:.* image:.*")).unwrap();
        assert!(!g.is_excluded("", "", "default"));
    }

    #[test]
    fn legacy_lists_only_when_new_ones_are_empty() {
        let f =
            ContainerFilter::from_settings(&[], &l("name:new"), &l("name:keep"), &l("name:old"))
                .unwrap();
        assert!(f.is_excluded("new", "", ""));
        assert!(!f.is_excluded("old", "", ""));
        assert!(!f.is_excluded("new-keep", "", ""));
        let g = ContainerFilter::from_settings(&[], &[], &[], &l("name:old")).unwrap();
        assert!(g.is_excluded("old", "", ""));
    }

    #[test]
    fn errors_and_warnings() {
        let e = ContainerFilter::new(&[], &l("name:ok image:bad[")).unwrap_err();
        let FilterError::InvalidRegex { rule, pattern, .. } = &e;
        assert_eq!((rule.as_str(), pattern.as_str()), ("image:bad[", "bad["));
        assert!(e.to_string().contains("image:bad["));
        let f = ContainerFilter::new(&[], &l("label:x name:y")).unwrap();
        assert_eq!(f.warnings().len(), 1);
        assert!(f.warnings()[0].contains("label:x"));
        assert!(!f.is_empty());
        assert!(ContainerFilter::default().is_empty());
    }
}
