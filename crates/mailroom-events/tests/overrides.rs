//! A company's template overrides: replacing files, errors naming the file, line and variable.

mod support;

use mailroom_events::{EventError, EventKind, Renderer, template_files};
use support::{fixture_text, renderer, sender};

fn override_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in files {
        std::fs::write(dir.path().join(name), source).unwrap();
    }
    dir
}

#[test]
fn files_in_the_directory_replace_the_built_ins_of_the_same_name() {
    let kind = EventKind::OverdueInvoiceReminder;
    let dir = override_dir(&[
        (
            "overdue_invoice_reminder.subject.txt",
            "Zahlungserinnerung {{ invoice.number }} ({{ reminder_stage }} Tage)\n",
        ),
        ("_layout.txt", "{% block content %}{% endblock %}\nMit freundlichen Grüßen\n{{ company.name }}\n"),
        ("README.md", "Other files are ignored."),
    ]);
    let custom = Renderer::new().with_override_dir(dir.path()).unwrap();
    let rendered = custom.render(kind, &fixture_text(kind), &sender()).unwrap();
    assert_eq!(rendered.subject, "Zahlungserinnerung INV-1001 (14 Tage)");
    assert!(rendered.text.ends_with("Mit freundlichen Grüßen\nNorthwind Traders"), "{}", rendered.text);
    let built_in = renderer().render(kind, &fixture_text(kind), &sender()).unwrap();
    assert_eq!(
        rendered.html,
        built_in.html.replace(&built_in.subject, &rendered.subject),
        "the HTML keeps the built-in, titled with the new subject"
    );
    assert_eq!(rendered.message_id(), built_in.message_id(), "templates do not change the event's identity");

    // Other kinds use the overridden shared layout too.
    let other =
        custom.render(EventKind::InvoicePaymentLink, &fixture_text(EventKind::InvoicePaymentLink), &sender()).unwrap();
    assert!(other.text.contains("Mit freundlichen Grüßen"));
}

#[test]
fn overridden_html_is_escaped_too() {
    let dir = override_dir(&[("user_notification.html", "<p>{{ recipient.name }}</p>")]);
    let custom = Renderer::new().with_override_dir(dir.path()).unwrap();
    let data =
        fixture_text(EventKind::UserNotification).replace("\"Grace Hopper\"", "\"<img src=x onerror=alert(1)>\"");
    let rendered = custom.render(EventKind::UserNotification, &data, &sender()).unwrap();
    assert_eq!(rendered.html, "<p>&lt;img src=x onerror=alert(1)&gt;</p>");
}

#[test]
fn an_undefined_variable_is_reported_with_file_line_and_expression() {
    let layout =
        include_str!("../templates/_layout.html").replace("{{ company.name }}</strong>", "{{ company.nmae }}</strong>");
    let expected_line = layout.lines().position(|line| line.contains("company.nmae")).unwrap() + 1;
    let dir = override_dir(&[("_layout.html", &layout)]);
    let custom = Renderer::new().with_override_dir(dir.path()).unwrap();
    let kind = EventKind::ShipmentConfirmed;
    let error = custom.render(kind, &fixture_text(kind), &sender()).unwrap_err();
    let EventError::Template { kind: Some(error_kind), file, line, expression, .. } = &error else { panic!("{error}") };
    assert_eq!(*error_kind, kind);
    assert_eq!(file, "_layout.html");
    assert_eq!(*line, Some(expected_line));
    assert_eq!(expression.as_deref(), Some("company.nmae"));
    assert_eq!(
        error.to_string(),
        format!(
            "template _layout.html, line {expected_line}: undefined value (in `company.nmae`) while rendering shipment_confirmed"
        )
    );

    // A misspelt variable in a kind's own template.
    let dir =
        override_dir(&[("goods_received.txt", "Receipt {{ receipt.number }}\nfor {{ receipt.purchase_ordre }}\n")]);
    let custom = Renderer::new().with_override_dir(dir.path()).unwrap();
    let error =
        custom.render(EventKind::GoodsReceived, &fixture_text(EventKind::GoodsReceived), &sender()).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("template goods_received.txt, line 2: undefined value"), "{message}");
    assert!(message.contains("receipt.purchase_ordre"), "{message}");
}

#[test]
fn a_syntax_error_is_reported_when_the_directory_is_loaded() {
    let dir = override_dir(&[(
        "invoice_payment_link.subject.txt",
        "Invoice {{ invoice.number }}\n{% if invoice.amount_due %}due{% endfi %}\n",
    )]);
    let error = Renderer::new().with_override_dir(dir.path()).unwrap_err();
    let EventError::Template { kind: None, file, line, .. } = &error else { panic!("{error}") };
    assert_eq!(file, "invoice_payment_link.subject.txt");
    assert_eq!(*line, Some(2));
    assert!(
        error.to_string().starts_with("template invoice_payment_link.subject.txt, line 2: syntax error"),
        "{error}"
    );
}

#[test]
fn misspelt_template_file_names_and_missing_directories_are_refused() {
    let dir = override_dir(&[("overdue_invoice_reminders.html", "<p>typo</p>")]);
    let error = Renderer::new().with_override_dir(dir.path()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EventError::OverrideDir { .. }));
    assert!(message.contains("\"overdue_invoice_reminders.html\" is not a template name: use one of"), "{message}");
    assert!(message.contains("overdue_invoice_reminder.html"), "{message}");

    let missing = dir.path().join("nope");
    let error = Renderer::new().with_override_dir(&missing).unwrap_err();
    assert!(error.to_string().contains("cannot be read"), "{error}");
}

#[test]
fn every_kind_has_its_three_template_files() {
    let names: Vec<&str> = Renderer::template_names().collect();
    for kind in EventKind::ALL {
        let files = template_files(kind);
        for file in [files.subject, files.html, files.text] {
            assert!(names.contains(&file), "{file}");
            assert!(file.starts_with(kind.as_str()));
        }
    }
    assert_eq!(names.len(), 3 * EventKind::ALL.len() + 3, "plus _layout.html, _layout.txt, _macros.html");
}
