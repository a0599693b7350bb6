// shopd: CLI11 parses the command line, the configuration loads, and a subcommand of the library runs.
#include "shopd/app/commands.hpp"
#include "shopd/app/dlq.hpp"
#include "shopd/app/outbox_cli.hpp"
#include "shopd/app/publish.hpp"
#include "shopd/app/sign.hpp"
#include "shopd/config/config.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

namespace {

namespace config = shopd::config;

struct config_flags {
  std::string env_file;
  config::string_map values;
};

// Every key of the configuration table is also a flag (DATABASE_URL -> --database-url), so the
// table, not this file, decides what can be configured.
void add_config_options(CLI::App& cmd, config_flags& flags) {
  cmd.add_option("--env-file", flags.env_file, "Load KEY=VALUE settings from this file")
      ->check(CLI::ExistingFile);
  for (const auto& key : config::keys()) {
    std::string help = std::string(key.help) + " [env " + std::string(key.name);
    if (!key.default_value.empty() && key.type != config::kind::secret) {
      help += ", default " + std::string(key.default_value);
    }
    help += "]";
    cmd.add_option_function<std::string>(
           key.flag_name(),
           [&flags, name = std::string(key.name)](const std::string& v) { flags.values[name] = v; }, help)
        ->group("Configuration (precedence: flag > environment > --env-file > default)");
  }
}

config::settings load_settings(const config_flags& flags) {
  config::sources src;
  if (!flags.env_file.empty()) src.env_file = flags.env_file;
  src.environment = config::process_environment();
  src.flags = flags.values;
  return config::load(src);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "shopd: the event-driven back end of an online shop (orders, email, inventory, analytics, relay)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", shopd::version_string());

  config_flags flags;

  shopd::serve_options serve_opts;
  std::uint16_t port = 0;
  auto* serve = app.add_subcommand("serve", "Run one or more roles on the shared HTTP server until SIGTERM");
  serve
      ->add_option("--role", serve_opts.roles, "orders|email|inventory|analytics|relay, a comma list, or all")
      ->required()
      ->take_all();
  auto* port_opt =
      serve->add_option("--port", port, "Listen on this port (only with a single role; 0 = any free port)");
  add_config_options(*serve, flags);

  shopd::migrate_options migrate_opts;
  auto* migrate = app.add_subcommand("migrate", "Apply pending database migrations (SQLite and PostgreSQL)");
  migrate->add_flag("--status", migrate_opts.status_only,
                    "Only report applied and pending migrations (exit 3 if pending)");
  migrate
      ->add_option(
          "--seed", migrate_opts.seed_file,
          "Then add the products of this catalogue (JSON) that do not exist yet; stock is never reset")
      ->check(CLI::ExistingFile);
  add_config_options(*migrate, flags);

  std::string config_format = "effective";
  auto* config_cmd =
      app.add_subcommand("config", "Print the configuration keys or the effective configuration");
  config_cmd
      ->add_option("--format", config_format,
                   "effective: KEY=VALUE as loaded (secrets masked); env: an example env file; "
                   "markdown: the README table")
      ->check(CLI::IsMember({"effective", "env", "markdown"}));
  std::string config_role;
  config_cmd->add_option("--role", config_role,
                         "With --format env: the env file of the unit shopd@ROLE (config/ROLE.env.example)");
  add_config_options(*config_cmd, flags);

  shopd::publish_options publish_opts;
  auto* publish =
      app.add_subcommand("publish", "Send an event by hand, through the relay/QStash or --direct");
  publish->add_option("event_type", publish_opts.event_type, "e.g. command.checkout, analytics.audit")
      ->required();
  publish->add_option("--data", publish_opts.data_arg, "The payload: JSON text, @FILE, or @- for stdin")
      ->required();
  publish->add_option("--to", publish_opts.to,
                      "A role (orders, email, inventory, analytics) or a URL; default: "
                      "the role that consumes the event type");
  publish->add_flag(
      "--direct", publish_opts.direct,
      "Sign with QSTASH_CURRENT_SIGNING_KEY and post straight to the webhook, bypassing the relay");
  publish->add_option("--event-id", publish_opts.event_id,
                      "Use this eventId (to redeliver an event on purpose)");
  publish->add_option("--correlation-id", publish_opts.correlation_id,
                      "Default: the checkoutId of a checkout, else the event id");
  publish->add_option("--traceparent", publish_opts.traceparent,
                      "Continue this W3C trace (00-TRACEID-PARENTID-FLAGS); default: start a new one");
  add_config_options(*publish, flags);

  shopd::dlq_options dlq_opts;
  auto* dlq =
      app.add_subcommand("dlq", "List, inspect, replay or delete dead letters (relay or Upstash QStash)");
  dlq->require_subcommand(1);
  auto* dlq_list = dlq->add_subcommand("list", "List dead letters, oldest first");
  dlq_list->add_option("--cursor", dlq_opts.cursor, "Continue from this cursor");
  dlq_list->add_option("--count", dlq_opts.count, "Entries per page (1-100)")->check(CLI::Range(1, 100));
  dlq_list->add_option("--url", dlq_opts.url, "Only messages to this destination");
  dlq_list->add_option("--message-id", dlq_opts.message_id, "Only this message");
  dlq_list->add_option("--status", dlq_opts.response_status, "Only this last response status");
  dlq_list->add_flag("--latest-first", dlq_opts.latest_first, "Newest first");
  dlq_list->add_flag("--json", dlq_opts.json, "Print the API's JSON answer");
  auto* dlq_show = dlq->add_subcommand("show", "Show one dead letter as JSON");
  dlq_show->add_option("dlq_id", dlq_opts.ids, "The DLQ id")->required()->expected(1);
  auto* dlq_replay = dlq->add_subcommand("replay", "Deliver dead letters again (new message ids)");
  dlq_replay->add_option("dlq_ids", dlq_opts.ids, "DLQ ids");
  dlq_replay->add_flag("--all", dlq_opts.all, "Every dead letter");
  auto* dlq_delete = dlq->add_subcommand("delete", "Remove dead letters");
  dlq_delete->add_option("dlq_ids", dlq_opts.ids, "DLQ ids");
  dlq_delete->add_flag("--all", dlq_opts.all, "Every dead letter");
  for (auto* sub : {dlq_list, dlq_show, dlq_replay, dlq_delete}) add_config_options(*sub, flags);

  shopd::outbox_options outbox_opts;
  auto* outbox = app.add_subcommand(
      "outbox", "List or requeue outbox events the relay or QStash refused for good (DATABASE_URL)");
  outbox->require_subcommand(1);
  auto* outbox_list = outbox->add_subcommand("list", "List the refused events set aside, oldest first");
  outbox_list->add_option("--after", outbox_opts.after, "Only events with a greater id (the next page)");
  outbox_list->add_option("--count", outbox_opts.count, "Events per page (1-1000)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  outbox_list->add_flag("--json", outbox_opts.json, "Print every field as JSON, the event's body included");
  auto* outbox_requeue = outbox->add_subcommand("requeue", "Offer refused events again, in their place");
  outbox_requeue->add_option("ids", outbox_opts.ids, "Outbox ids (as listed)");
  outbox_requeue->add_flag("--all", outbox_opts.all, "Every refused event");
  for (auto* sub : {outbox_list, outbox_requeue}) {
    sub->add_option("--role", outbox_opts.role, "Only events produced by this role");
    add_config_options(*sub, flags);
  }

  shopd::sign_options sign_opts;
  auto* sign = app.add_subcommand("sign", "Print a valid Upstash-Signature for a URL and body (for curl)");
  sign->add_option("--url", sign_opts.url, "The exact URL the request goes to (the token's subject)")
      ->required();
  sign->add_option("--body", sign_opts.body_arg, "The body: @FILE, @- for stdin, or the literal text")
      ->required();
  sign->add_option("--key", sign_opts.key, "Which signing key signs")
      ->check(CLI::IsMember({"current", "next"}))
      ->capture_default_str();
  add_config_options(*sign, flags);

  app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message (or the help) and gives its own codes (105, 106, 109, ...); a
    // command-line mistake is exit 2, as documented, which the systemd unit does not restart on.
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (app.got_subcommand("version")) {
      std::printf("%s\n", shopd::version_string().c_str());
      return 0;
    }
    if (config_cmd->parsed() && !config_role.empty() && config_format != "env") {
      throw config::config_error("config --role applies to --format env only");
    }
    if (config_cmd->parsed() && config_format != "effective") {
      const std::string text = config_format == "markdown" ? config::render_markdown()
                               : config_role.empty()       ? config::render_env_example()
                                                           : config::render_env_example(config_role);
      std::fputs(text.c_str(), stdout);
      return 0;
    }
    const auto settings = load_settings(flags);
    if (config_cmd->parsed()) {
      for (const auto& key : config::keys()) {
        std::printf("%s=%s\n", std::string(key.name).c_str(), config::display_value(settings, key).c_str());
      }
      return 0;
    }
    if (serve->parsed()) {
      serve_opts.settings = settings;
      if (port_opt->count() > 0) serve_opts.port = port;
      return shopd::serve(serve_opts);
    }
    if (publish->parsed()) {
      publish_opts.settings = settings;
      return shopd::publish(publish_opts);
    }
    if (dlq->parsed()) {
      dlq_opts.settings = settings;
      for (auto* sub : dlq->get_subcommands()) dlq_opts.action = sub->get_name();
      return shopd::dlq(dlq_opts);
    }
    if (outbox->parsed()) {
      outbox_opts.settings = settings;
      for (auto* sub : outbox->get_subcommands()) outbox_opts.action = sub->get_name();
      return shopd::outbox(outbox_opts);
    }
    if (sign->parsed()) {
      sign_opts.settings = settings;
      return shopd::sign(sign_opts);
    }
    migrate_opts.settings = settings;
    return shopd::migrate(migrate_opts);
  } catch (const config::config_error& e) {
    std::fprintf(stderr, "shopd: %s\n", e.what());
    return 2;
  }
}
