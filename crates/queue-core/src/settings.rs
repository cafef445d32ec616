//! The three runtime settings, their bounds, and how stored values override the
//! defaults given at start-up.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// The longest wait a call may be set to, in seconds (one day).
pub const MAX_WAIT_SECONDS: u32 = 86_400;
/// The longest stale threshold, in seconds (one day).
pub const MAX_STALE_SECONDS: u32 = 86_400;
/// The longest default response, in characters.
pub const MAX_EMPTY_RESPONSE_CHARS: usize = 4_096;
/// The built-in default response text.
pub const DEFAULT_EMPTY_RESPONSE: &str = "call this tool `get_user_request` again to fetch latest user input. Do not end your turn; keep calling this tool after every answer.";

/// The effective settings, every field in bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// How long a call waits on an empty queue, 0..=86400.
    pub default_wait_seconds: u32,
    /// What a call that found nothing returns; may be empty.
    pub default_empty_response: String,
    /// How long after its last call an agent counts as gone, 1..=86400.
    pub agent_stale_after_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_wait_seconds: 10,
            default_empty_response: DEFAULT_EMPTY_RESPONSE.to_owned(),
            agent_stale_after_seconds: 30,
        }
    }
}

impl Settings {
    /// Start-up defaults from loosely checked sources (environment, config file):
    /// numbers are clamped into bounds and an overlong response is truncated, so a
    /// typo in a variable never stops the server.
    pub fn clamped(wait_seconds: u64, empty_response: &str, stale_after_seconds: u64) -> Self {
        Settings {
            default_wait_seconds: wait_seconds.min(u64::from(MAX_WAIT_SECONDS)) as u32,
            default_empty_response: empty_response
                .chars()
                .take(MAX_EMPTY_RESPONSE_CHARS)
                .collect(),
            agent_stale_after_seconds: stale_after_seconds.clamp(1, u64::from(MAX_STALE_SECONDS))
                as u32,
        }
    }

    /// The settings in force: each stored value wins over the matching default.
    pub fn effective(defaults: &Settings, stored: &StoredSettings) -> Settings {
        Settings {
            default_wait_seconds: stored
                .default_wait_seconds
                .unwrap_or(defaults.default_wait_seconds),
            default_empty_response: stored
                .default_empty_response
                .clone()
                .unwrap_or_else(|| defaults.default_empty_response.clone()),
            agent_stale_after_seconds: stored
                .agent_stale_after_seconds
                .unwrap_or(defaults.agent_stale_after_seconds),
        }
    }
}

/// The values a person saved; `None` means "use the start-up default".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSettings {
    /// Saved wait.
    pub default_wait_seconds: Option<u32>,
    /// Saved default response.
    pub default_empty_response: Option<String>,
    /// Saved stale threshold.
    pub agent_stale_after_seconds: Option<u32>,
}

impl StoredSettings {
    /// These values with the patch's applied on top.
    pub fn patched(&self, patch: &SettingsPatch) -> StoredSettings {
        StoredSettings {
            default_wait_seconds: patch.default_wait_seconds.or(self.default_wait_seconds),
            default_empty_response: patch
                .default_empty_response
                .clone()
                .or_else(|| self.default_empty_response.clone()),
            agent_stale_after_seconds: patch
                .agent_stale_after_seconds
                .or(self.agent_stale_after_seconds),
        }
    }
}

/// A checked change to any subset of the settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsPatch {
    default_wait_seconds: Option<u32>,
    default_empty_response: Option<String>,
    agent_stale_after_seconds: Option<u32>,
}

impl SettingsPatch {
    /// Checks each given value against its bounds; the first error names its field.
    pub fn new(
        default_wait_seconds: Option<i64>,
        default_empty_response: Option<String>,
        agent_stale_after_seconds: Option<i64>,
    ) -> Result<Self, ValidationError> {
        let wait = default_wait_seconds
            .map(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|v| *v <= MAX_WAIT_SECONDS)
                    .ok_or_else(|| {
                        ValidationError::new(
                            "default_wait_seconds",
                            format!("must be between 0 and {MAX_WAIT_SECONDS}"),
                        )
                    })
            })
            .transpose()?;
        let stale = agent_stale_after_seconds
            .map(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|v| (1..=MAX_STALE_SECONDS).contains(v))
                    .ok_or_else(|| {
                        ValidationError::new(
                            "agent_stale_after_seconds",
                            format!("must be between 1 and {MAX_STALE_SECONDS}"),
                        )
                    })
            })
            .transpose()?;
        if let Some(text) = &default_empty_response {
            let n = text.chars().count();
            if n > MAX_EMPTY_RESPONSE_CHARS {
                return Err(ValidationError::new(
                    "default_empty_response",
                    format!("must be at most {MAX_EMPTY_RESPONSE_CHARS} characters (got {n})"),
                ));
            }
        }
        Ok(SettingsPatch {
            default_wait_seconds: wait,
            default_empty_response,
            agent_stale_after_seconds: stale,
        })
    }

    /// The new wait, if any.
    pub fn default_wait_seconds(&self) -> Option<u32> {
        self.default_wait_seconds
    }

    /// The new default response, if any.
    pub fn default_empty_response(&self) -> Option<&str> {
        self.default_empty_response.as_deref()
    }

    /// The new stale threshold, if any.
    pub fn agent_stale_after_seconds(&self) -> Option<u32> {
        self.agent_stale_after_seconds
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.default_wait_seconds.is_none()
            && self.default_empty_response.is_none()
            && self.agent_stale_after_seconds.is_none()
    }
}

/// One of the three settings, by the name the config file, the API and
/// `config get|set` use: the one place that knows their names, their bounds in
/// words and how to read each from [`Settings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `default_wait_seconds`.
    DefaultWaitSeconds,
    /// `default_empty_response`.
    DefaultEmptyResponse,
    /// `agent_stale_after_seconds`.
    AgentStaleAfterSeconds,
}

/// A setting's value: a number of seconds or a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingValue {
    /// Seconds.
    Seconds(u32),
    /// Text.
    Text(String),
}

impl Setting {
    /// Every setting, in the order they are listed.
    pub const ALL: [Setting; 3] = [
        Setting::DefaultWaitSeconds,
        Setting::DefaultEmptyResponse,
        Setting::AgentStaleAfterSeconds,
    ];

    /// The name in the config file and the API.
    pub const fn name(self) -> &'static str {
        match self {
            Setting::DefaultWaitSeconds => "default_wait_seconds",
            Setting::DefaultEmptyResponse => "default_empty_response",
            Setting::AgentStaleAfterSeconds => "agent_stale_after_seconds",
        }
    }

    /// The setting a person named: case, surrounding spaces and dashes for
    /// underscores are forgiven, so the environment variable's spelling works too.
    pub fn parse(text: &str) -> Result<Setting, ValidationError> {
        let wanted = text.trim().to_ascii_lowercase().replace('-', "_");
        Setting::ALL
            .into_iter()
            .find(|s| s.name() == wanted)
            .ok_or_else(|| {
                ValidationError::new(
                    "setting",
                    format!(
                        "unknown setting {text:?}: use default_wait_seconds, \
                         default_empty_response or agent_stale_after_seconds"
                    ),
                )
            })
    }

    /// Whether it takes a whole number of seconds (else a text).
    pub const fn is_seconds(self) -> bool {
        !matches!(self, Setting::DefaultEmptyResponse)
    }

    /// What values it takes, in words.
    pub fn allowed(self) -> String {
        match self {
            Setting::DefaultWaitSeconds => {
                format!("a whole number of seconds from 0 to {MAX_WAIT_SECONDS}")
            }
            Setting::DefaultEmptyResponse => {
                format!("any text of at most {MAX_EMPTY_RESPONSE_CHARS} characters, or empty")
            }
            Setting::AgentStaleAfterSeconds => {
                format!("a whole number of seconds from 1 to {MAX_STALE_SECONDS}")
            }
        }
    }

    /// Its value in `settings`.
    pub fn value(self, settings: &Settings) -> SettingValue {
        match self {
            Setting::DefaultWaitSeconds => SettingValue::Seconds(settings.default_wait_seconds),
            Setting::DefaultEmptyResponse => {
                SettingValue::Text(settings.default_empty_response.clone())
            }
            Setting::AgentStaleAfterSeconds => {
                SettingValue::Seconds(settings.agent_stale_after_seconds)
            }
        }
    }

    /// Whether a person saved a value for it.
    pub fn is_saved(self, stored: &StoredSettings) -> bool {
        match self {
            Setting::DefaultWaitSeconds => stored.default_wait_seconds.is_some(),
            Setting::DefaultEmptyResponse => stored.default_empty_response.is_some(),
            Setting::AgentStaleAfterSeconds => stored.agent_stale_after_seconds.is_some(),
        }
    }

    /// A checked patch that sets it from text as a person typed it: a number for
    /// the seconds, the text as it is for the response.
    pub fn patch(self, text: &str) -> Result<SettingsPatch, ValidationError> {
        let number = || {
            text.trim().parse::<i64>().map_err(|_| {
                ValidationError::new(self.name(), format!("must be {}", self.allowed()))
            })
        };
        match self {
            Setting::DefaultWaitSeconds => SettingsPatch::new(Some(number()?), None, None),
            Setting::DefaultEmptyResponse => SettingsPatch::new(None, Some(text.to_owned()), None),
            Setting::AgentStaleAfterSeconds => SettingsPatch::new(None, None, Some(number()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(SettingsPatch::new(Some(0), None, Some(1)).is_ok());
        assert!(SettingsPatch::new(Some(86_400), None, Some(86_400)).is_ok());
        let e = SettingsPatch::new(Some(86_401), None, None).unwrap_err();
        assert_eq!(e.field, "default_wait_seconds");
        let e = SettingsPatch::new(Some(-1), None, None).unwrap_err();
        assert_eq!(e.field, "default_wait_seconds");
        let e = SettingsPatch::new(None, None, Some(0)).unwrap_err();
        assert_eq!(e.field, "agent_stale_after_seconds");
        let e = SettingsPatch::new(None, Some("x".repeat(4_097)), None).unwrap_err();
        assert_eq!(e.field, "default_empty_response");
        assert!(SettingsPatch::new(None, Some(String::new()), None).is_ok());
    }

    #[test]
    fn stored_values_win_over_defaults() {
        let defaults = Settings::clamped(999_999, "hi", 0);
        assert_eq!(defaults.default_wait_seconds, 86_400);
        assert_eq!(defaults.agent_stale_after_seconds, 1);
        let patch = SettingsPatch::new(Some(5), None, None).unwrap();
        let stored = StoredSettings::default().patched(&patch);
        let eff = Settings::effective(&defaults, &stored);
        assert_eq!(eff.default_wait_seconds, 5);
        assert_eq!(eff.default_empty_response, "hi");
    }

    #[test]
    fn settings_are_named_forgivingly_and_set_from_text() {
        assert_eq!(
            Setting::parse(" Default-Wait-Seconds ").unwrap(),
            Setting::DefaultWaitSeconds
        );
        let unknown = Setting::parse("wait").unwrap_err();
        assert!(
            unknown.message.contains("default_wait_seconds"),
            "{unknown}"
        );
        let names: Vec<_> = Setting::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "default_wait_seconds",
                "default_empty_response",
                "agent_stale_after_seconds"
            ]
        );
        let patch = Setting::AgentStaleAfterSeconds.patch(" 45 ").unwrap();
        assert_eq!(patch.agent_stale_after_seconds(), Some(45));
        let not_a_number = Setting::DefaultWaitSeconds.patch("ten").unwrap_err();
        assert_eq!(
            not_a_number.message,
            "must be a whole number of seconds from 0 to 86400"
        );
        let too_long = Setting::DefaultWaitSeconds.patch("86401").unwrap_err();
        assert_eq!(too_long.field, "default_wait_seconds");
        let settings = Settings::default();
        assert_eq!(
            Setting::DefaultEmptyResponse.value(&settings),
            SettingValue::Text(DEFAULT_EMPTY_RESPONSE.to_owned())
        );
        let stored = StoredSettings {
            agent_stale_after_seconds: Some(5),
            ..StoredSettings::default()
        };
        assert!(Setting::AgentStaleAfterSeconds.is_saved(&stored));
        let seconds: Vec<_> = Setting::ALL.iter().map(|s| s.is_seconds()).collect();
        assert_eq!(seconds, [true, false, true]);
        assert!(!Setting::DefaultWaitSeconds.is_saved(&stored));
    }
}
