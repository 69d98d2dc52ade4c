//! The command-line layer: one `--<flag>` per declared setting, built with `clap` from
//! [`SETTINGS`], flattened into `tessera serve` and `tessera config` alike.
//!
//! ```
//! use clap::{Args, FromArgMatches};
//! use tessera::config::SettingFlags;
//! let command = SettingFlags::augment_args(clap::Command::new("serve"));
//! let matches = command.try_get_matches_from(["serve", "--max-size", "20GiB"]).unwrap();
//! let flags = SettingFlags::from_arg_matches(&matches).unwrap();
//! assert_eq!(flags.values(), [("max_size", "20GiB".to_string())]);
//! ```
//!
//! Every flag takes its value as text; the value is checked with the other layers' values, so a
//! bad flag gets the same message as a bad file key or variable. A boolean flag alone means
//! `true` (`--bazel-http-blake3`), or takes a value (`--bazel-http-blake3=false`).

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::settings::{Kind, Setting, SETTINGS};

/// The settings given on the command line: (key, value), in declaration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingFlags {
    values: Vec<(&'static str, String)>,
}

impl SettingFlags {
    /// The (key, value) of every setting given as a flag.
    pub fn values(&self) -> &[(&'static str, String)] {
        &self.values
    }

    /// Reads the flags of `settings` from `matches` (of a command built with [`add_flags`]).
    pub fn from_matches(matches: &ArgMatches, settings: &'static [Setting]) -> SettingFlags {
        let values = settings
            .iter()
            .filter_map(|setting| {
                let value = matches.get_one::<String>(setting.key)?;
                Some((setting.key, value.clone()))
            })
            .collect();
        SettingFlags { values }
    }
}

/// Adds one flag per setting to `command`.
pub fn add_flags(command: Command, settings: &'static [Setting]) -> Command {
    settings
        .iter()
        .fold(command, |command, setting| command.arg(flag(setting)))
}

fn flag(setting: &Setting) -> Arg {
    let arg = Arg::new(setting.key)
        .long(setting.flag())
        .value_name(setting.kind.value_name())
        .action(ArgAction::Set)
        .help(help(setting));
    if setting.kind == Kind::Bool {
        arg.num_args(0..=1).default_missing_value("true")
    } else {
        arg
    }
}

/// The help line: what the setting does, its default, and its two other spellings.
fn help(setting: &Setting) -> String {
    let default = if setting.default.is_empty() {
        String::new()
    } else {
        format!(" [default: {}]", setting.default)
    };
    format!(
        "{}{default} [env: {}] [file: {}]",
        setting.help,
        setting.env_var(),
        setting.key
    )
}

impl clap::FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(SettingFlags::from_matches(matches, SETTINGS))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let update = SettingFlags::from_matches(matches, SETTINGS);
        for (key, value) in update.values {
            match self.values.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => self.values.push((key, value)),
            }
        }
        Ok(())
    }
}

impl clap::Args for SettingFlags {
    fn augment_args(command: Command) -> Command {
        add_flags(command, SETTINGS)
    }

    fn augment_args_for_update(command: Command) -> Command {
        add_flags(command, SETTINGS)
    }
}
