"""Dataset specs: the built-in ones load, and a broken spec names the key that is wrong."""

from __future__ import annotations

import pytest

from warehouse.errors import SpecError
from warehouse.spec import builtin_spec_names, load_spec, parse_spec

MINIMAL = """
name = "mini"
[customers]
files = ["c.csv"]
[[customers.columns]]
name = "customer_id"
type = "int"
role = "id"
description = "Key."
"""


BUILTIN = ["berka", "demo", "german-credit", "loan-prediction", "online-retail", "taiwan-default"]


def test_builtin_specs_are_the_documented_six() -> None:
    assert builtin_spec_names() == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_spec_loads(name: str) -> None:
    spec, text = load_spec(name)
    assert spec.name == name
    assert text.strip()
    assert spec.sources()


def test_minimal_spec_parses() -> None:
    spec = parse_spec(MINIMAL, "mini.toml")
    assert spec.customers is not None and spec.target is None


def test_yaml_spec_parses() -> None:
    text = """
name: mini
customers:
  files: [c.csv]
  columns:
    - {name: customer_id, type: int, role: id, description: Key.}
    - {name: flag, source: Flag, type: bool, role: target, positive: "Y", description: Defaulted.}
"""
    spec = parse_spec(text, "mini.yaml")
    assert spec.target is not None and spec.target.positive == "Y"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'x'\n[customers\n", "does not parse"),
        (MINIMAL.replace('type = "int"', 'type = "integer"'), "customers.columns['customer_id'].type"),
        (
            MINIMAL.replace('role = "id"', 'role = "id"\ncolour = "red"'),
            "customers.columns['customer_id'].colour: unknown key",
        ),
        (MINIMAL.replace('role = "id"', ""), "customers.columns['customer_id'].role: this key is required"),
        ("name: x\ncustomers:\n  files: [a\n", "does not parse at line 4, column 1"),
        (MINIMAL.replace('name = "customer_id"', 'name = "cust"'), "needs a column named 'customer_id'"),
        (MINIMAL.replace('name = "customer_id"', 'name = "Customer ID"'), "must be snake_case"),
        ("name = 'x'", "needs at least one of customers"),
        (
            MINIMAL + '[[customers.columns]]\nname="t"\ntype="bool"\nrole="target"\ndescription="Default."\n',
            "needs 'positive'",
        ),
    ],
)
def test_bad_spec_names_the_key(text: str, expected: str) -> None:
    label = "bad.yaml" if text.startswith("name: ") else "bad.toml"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, label)
    message = str(caught.value)
    assert expected in message
    assert message.startswith(f"Spec {label}")
    assert "\n" not in message


def test_every_problem_is_named_at_once_by_its_column() -> None:
    """Only the first problem was shown, at a position (customers.columns.7), not the column."""
    text = MINIMAL + '[[customers.columns]]\nname = "age"\ntype = "integer"\nrole = "numeric"\ncolour = "x"\n'
    text += '[[customers.columns]]\nname = "flag"\ntype = "bool"\nrole = "target"\npositive = 5\n'
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "bad.toml")
    assert str(caught.value) == (
        "Spec bad.toml has 3 problems: customers.columns['age'].type: Input should be 'int', 'float', 'string', "
        "'bool', 'date' or 'timestamp'; customers.columns['age'].colour: unknown key (check its spelling against "
        "the spec format in the README); customers.columns['flag'].positive: Input should be a valid string or a valid list."
    )


def test_a_column_without_a_description_is_explained_by_its_origin() -> None:
    spec = parse_spec(MINIMAL.replace('description = "Key."', 'source = "CUST_NO"'), "mini.toml")
    assert spec.customers.column("customer_id").description == (
        "customer_id, from file column 'CUST_NO' (the spec has no description)."
    )


def test_unknown_spec_name_lists_the_builtins() -> None:
    with pytest.raises(SpecError, match="neither a built-in spec .*demo.*nor an existing file"):
        load_spec("no-such-spec")
