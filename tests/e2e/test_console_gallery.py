"""The console's template gallery in a real browser: the shipped library is listed, the search
and category filters narrow it (and stay in the URL), the install form is drawn from the
template's JSON-Schema parameters, a missing required parameter is answered with the server's
error naming it, an install creates the workflow, and a role without templates:install sees the
button disabled with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.console_browser import Console, console_server


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from console_server(tmp_path_factory.mktemp("gallery"))


def test_the_gallery_lists_and_filters_the_library(console: Console) -> None:
    status, library = console.api("GET", "/api/v1/templates")
    assert status == 200 and len(library["items"]) >= 20
    page = console.sign_in("viewer", "/console/templates")
    rows = page.locator("table[aria-label='Templates'] tbody tr")
    expect(rows).to_have_count(len(library["items"]))
    page.get_by_label("Search").fill("webhook relay")
    expect(rows).to_have_count(1)
    expect(page.locator("tr[data-id='webhook-relay']")).to_be_visible()
    assert "q=webhook+relay" in page.url  # the filter can be shared
    page.get_by_label("Search").fill("")
    in_category = [t for t in library["items"] if "integration" in t.get("categories", [])]
    page.get_by_label("Category").select_option("integration")
    expect(rows).to_have_count(len(in_category))
    page.reload()
    expect(page.get_by_label("Category")).to_have_value("integration")
    expect(rows).to_have_count(len(in_category))
    assert not console.problems, console.problems


def test_install_with_parameters_from_the_form(console: Console) -> None:
    page = console.sign_in("admin", "/console/templates?q=webhook")
    page.get_by_role("button", name="Install webhook-relay").click()
    form = page.get_by_test_id("install")
    expect(form.get_by_label("attempts")).to_have_value("5")  # the schema's default
    expect(form.get_by_label("hook")).to_have_value("relay")
    name = "relay_" + uuid.uuid4().hex[:8]
    form.get_by_label("Workflow name").fill(name)
    form.get_by_label("hook").fill(name)
    form.get_by_test_id("install-submit").click()  # target_url (required) left empty
    error = page.get_by_test_id("install-error")
    expect(error).to_contain_text("invalid_parameters")
    expect(error).to_contain_text("target_url")
    console.problems.clear()  # the refused install's 400 is logged by the browser, as it should be
    form.get_by_label("target_url").fill("https://example.com/in")
    form.get_by_label("attempts").fill("7")
    form.get_by_test_id("install-submit").click()
    expect(page.get_by_test_id("installed")).to_contain_text(name)
    console.shot(page, "gallery", doc=True)
    status, definition = console.api("GET", f"/api/v1/definitions/{name}")
    assert status == 200, definition
    assert definition["provenance"]["template"] == "webhook-relay"
    assert definition["provenance"]["parameters"]["attempts"] == 7
    assert not console.problems, console.problems


def test_a_role_without_install_sees_why(console: Console) -> None:
    page = console.sign_in("operator", "/console/templates?template=webhook-relay")
    submit = page.get_by_test_id("install-submit")
    expect(submit).to_be_disabled()
    expect(page.locator("span[title*='templates:install']")).to_have_count(1)
    assert not console.problems, console.problems
