"""The factor library: packaged data, hash checks, editions and row validation, on real files."""

from __future__ import annotations

import hashlib
import shutil
import tomllib
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest

from accounting.errors import FactorError
from accounting.factors import FACTOR_COLUMNS, FactorLibrary, carbonate_codes, fuel_phases, load_library

PACKAGED = Path(str(files("factors")))
FIRST = "2026.1"
C1_FILE = f"editions/{FIRST}/gbt32151_34_2024_c1_fuels.csv"

# Fuel and carbonate codes of the activity-data contract (shared/contracts/activity-data.md).
CONTRACT_FUELS = {
    "anthracite", "bituminous_coal", "lignite", "raw_coal", "washed_coal", "other_washed_coal",
    "briquette", "other_coal_products", "coke", "petroleum_coke", "crude_oil", "fuel_oil", "gasoline",
    "diesel", "kerosene", "lng", "lpg", "naphtha", "tar", "crude_benzene", "other_petroleum_products",
    "natural_gas", "blast_furnace_gas", "converter_gas", "coke_oven_gas", "refinery_dry_gas", "other_gas",
}
CONTRACT_CARBONATES = {"CaCO3", "MgCO3", "Na2CO3", "NaHCO3", "FeCO3", "MnCO3", "BaCO3", "Li2CO3", "K2CO3",
                       "SrCO3", "CaMg(CO3)2"}

# Hand-copied from methodology §3.1, column "EF (tCO2/unit)" (derived there, not printed in the standard).
C1_EF_PER_UNIT = {
    "anthracite": 2.52151, "bituminous_coal": 1.74175, "lignite": 1.17286, "washed_coal": 2.20818,
    "other_washed_coal": 1.05194, "briquette": 1.93596, "other_coal_products": 2.10805, "coke": 2.86042,
    "petroleum_coke": 3.21154, "crude_oil": 3.02020, "fuel_oil": 3.17046, "gasoline": 2.92506,
    "diesel": 3.09591, "kerosene": 3.03339, "lng": 2.83126, "lpg": 3.10133, "naphtha": 3.19807,
    "tar": 2.64457, "crude_benzene": 3.41088, "other_petroleum_products": 2.94876, "natural_gas": 21.62189,
    "blast_furnace_gas": 8.48113, "converter_gas": 15.12403, "coke_oven_gas": 8.86381,
    "refinery_dry_gas": 3.03890, "other_gas": 2.31483,
}


@pytest.fixture(scope="module")
def factors() -> pd.DataFrame:
    return load_library().factors()


def one(table: pd.DataFrame, *, parameter: str, subject: str, year: int | None = None,
        ruleset: str = "cn") -> pd.Series:
    hit = table[(table["parameter"] == parameter) & (table["subject"] == subject)]
    hit = hit[hit["ruleset"] == ruleset]
    if year is not None:
        hit = hit[hit["year"] == year]
    assert len(hit) == 1, f"{len(hit)} rows for {ruleset}/{parameter}/{subject}/{year}"
    return hit.iloc[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_library(tmp_path: Path) -> Path:
    root = tmp_path / "factors"
    shutil.copytree(PACKAGED, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return root


# --- hashes and immutability -----------------------------------------------------------------------


def test_every_packaged_file_matches_its_catalog_hash() -> None:
    catalog = tomllib.loads((PACKAGED / "catalog.toml").read_text(encoding="utf-8"))
    listed = {}
    for edition in catalog["editions"]:
        for entry in edition["files"]:
            listed[f"editions/{edition['edition']}/{entry['file']}"] = entry["sha256"]
    for entry in catalog["gwp_sets"] + catalog["benchmark_editions"]:
        listed[entry["file"]] = entry["sha256"]
    on_disk = {p.relative_to(PACKAGED).as_posix() for p in PACKAGED.glob("editions/*/*.csv")}
    on_disk |= {p.relative_to(PACKAGED).as_posix() for p in PACKAGED.glob("gwp/*.csv")}
    on_disk |= {p.relative_to(PACKAGED).as_posix() for p in PACKAGED.glob("benchmarks/*.csv")}
    assert on_disk == set(listed)
    for name, expected in listed.items():
        assert sha256(PACKAGED / name) == expected, name


def test_a_library_with_one_changed_byte_fails_to_load_naming_the_file(tmp_path: Path) -> None:
    root = copy_library(tmp_path)
    path = root / C1_FILE
    path.write_bytes(path.read_bytes().replace(b"19.570", b"19.571", 1))
    with pytest.raises(FactorError, match="gbt32151_34_2024_c1_fuels.csv"):
        load_library(root)


def test_a_changed_gwp_file_fails_to_load_naming_the_file(tmp_path: Path) -> None:
    root = copy_library(tmp_path)
    path = root / "gwp" / "AR5.csv"
    path.write_bytes(path.read_bytes().replace(b"CH4,28,", b"CH4,29,"))
    with pytest.raises(FactorError, match="gwp/AR5.csv"):
        load_library(root)


def test_a_changed_benchmark_edition_fails_to_load_naming_the_file(tmp_path: Path) -> None:
    root = copy_library(tmp_path)
    assert load_library(root).benchmark_edition("2026.1") == (root / "benchmarks" / "2026.1.csv").read_text(
        encoding="utf-8")
    path = root / "benchmarks" / "2026.1.csv"
    path.write_bytes(path.read_bytes().replace(b",0.877,", b",0.878,", 1))
    with pytest.raises(FactorError, match="benchmarks/2026.1.csv"):
        load_library(root)
    with pytest.raises(FactorError, match="benchmarks/2026.1.csv"):
        FactorLibrary(root).benchmark_edition("2026.1")  # checked when read, too
    assert FactorLibrary(root).benchmark_edition("2027.1") is None  # not listed: no such edition


def test_an_unlisted_benchmark_edition_is_refused(tmp_path: Path) -> None:
    root = copy_library(tmp_path)
    shutil.copy(root / "benchmarks" / "2026.1.csv", root / "benchmarks" / "2027.1.csv")
    with pytest.raises(FactorError, match="2027.1.csv"):
        load_library(root)


def test_an_unlisted_file_in_an_edition_folder_is_refused(tmp_path: Path) -> None:
    root = copy_library(tmp_path)
    shutil.copy(root / C1_FILE, root / "editions" / FIRST / "extra.csv")
    with pytest.raises(FactorError, match="extra.csv"):
        load_library(root)


def test_a_second_edition_becomes_latest_and_leaves_the_first_unchanged(tmp_path: Path) -> None:
    root = copy_library(tmp_path)
    shutil.copytree(root / "editions" / FIRST, root / "editions" / "2027.1")
    changed = root / "editions" / "2027.1" / "gbt32151_34_2024_c1_fuels.csv"
    changed.write_bytes(changed.read_bytes().replace(b",19.570,", b",19.571,", 1))
    entries = "".join(
        f'\n[[editions.files]]\nfile = "{p.name}"\nsha256 = "{sha256(p)}"\n'
        for p in sorted((root / "editions" / "2027.1").glob("*.csv"))
    )
    catalog = (root / "catalog.toml").read_text(encoding="utf-8")
    head, gwp = catalog.split("\n[[gwp_sets]]", 1)
    edition = '\n[[editions]]\nedition = "2027.1"\nreleased = 2027-01-15\ndescription = "test correction"\n'
    (root / "catalog.toml").write_text(head + edition + entries + "\n[[gwp_sets]]" + gwp, encoding="utf-8")

    library = load_library(root)

    assert library.editions() == [FIRST, "2027.1"]
    assert library.latest() == "2027.1"
    latest = library.factors()
    assert one(latest, parameter="ncv", subject="bituminous_coal")["value"] == 19.571
    assert set(latest["edition"]) == {"2027.1"}
    first = library.factors(FIRST)
    assert one(first, parameter="ncv", subject="bituminous_coal")["value"] == 19.570
    pd.testing.assert_frame_equal(first, load_library().factors(FIRST))


def test_an_unknown_edition_is_an_error() -> None:
    with pytest.raises(FactorError, match="1999.1"):
        load_library().factors("1999.1")


def test_callers_cannot_change_the_cached_edition() -> None:
    library = load_library()
    table = library.factors()
    table.loc[:, "value"] = 0.0
    assert (library.factors()["value"] > 0).all()


# --- shape and provenance ---------------------------------------------------------------------------


def test_the_table_has_the_csv_columns_plus_provenance_and_canonical_values(factors: pd.DataFrame) -> None:
    extra = ["edition", "source_file", "source_sha256", "value_canonical", "unit_canonical"]
    assert list(factors.columns) == [*FACTOR_COLUMNS, *extra]
    assert str(factors["year"].dtype) == "Int64"
    assert factors["value"].dtype == "float64"
    assert factors["value_canonical"].dtype == "float64"
    assert factors["factor_id"].is_unique
    assert set(factors["edition"]) == {FIRST}
    assert not factors["factor_id"].str.contains(FIRST, regex=False).any()


def test_every_factor_is_sourced_and_verified_or_corroborated(factors: pd.DataFrame) -> None:
    assert set(factors["review_status"]) <= {"verified", "corroborated"}
    assert factors[["publisher", "document", "locator"]].notna().all().all()
    assert set(factors["ruleset"]) == {"cn", "ipcc2006"}


def test_every_contract_fuel_has_a_full_chinese_default(factors: pd.DataFrame) -> None:
    for fuel in CONTRACT_FUELS:
        for parameter in ("ncv", "carbon_content", "oxidation_rate"):
            one(factors, parameter=parameter, subject=fuel)


def test_fuel_subjects_and_carbonates_use_contract_codes(factors: pd.DataFrame) -> None:
    fuel_rows = factors[factors["parameter"].isin(["ncv", "carbon_content", "oxidation_rate", "ch4_per_heat",
                                                   "n2o_per_heat"])]
    assert set(fuel_rows["subject"]) <= CONTRACT_FUELS
    assert set(factors.loc[factors["parameter"] == "co2_per_mass", "subject"]) == CONTRACT_CARBONATES
    assert set(fuel_phases()) == CONTRACT_FUELS
    assert carbonate_codes() == CONTRACT_CARBONATES


def test_fuel_phases_follow_how_each_fuel_is_metered() -> None:
    phases = fuel_phases()
    assert phases["bituminous_coal"] == "solid"
    assert phases["diesel"] == "liquid"
    assert phases["natural_gas"] == "gas"
    assert phases["refinery_dry_gas"] == "gas"


# --- spot values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "subject", "year", "ruleset", "value", "unit", "canonical", "canonical_unit"),
    [
        ("ncv", "bituminous_coal", None, "cn", 19.570, "GJ/t", 19.570, "GJ/t"),
        ("carbon_content", "bituminous_coal", None, "cn", 0.0261, "tC/GJ", 0.0261, "tC/GJ"),
        ("oxidation_rate", "bituminous_coal", None, "cn", 0.93, "1", 0.93, "1"),
        ("ncv", "natural_gas", None, "cn", 389.31, "GJ/(10^4 Nm3)", 389.31, "GJ/(10^4 Nm3)"),
        ("ncv", "raw_coal", None, "cn", 20.908, "GJ/t", 20.908, "GJ/t"),
        ("co2_per_mass", "CaCO3", None, "cn", 0.440, "tCO2/t", 0.440, "tCO2/t"),
        ("co2_per_heat", "heat", None, "cn", 0.11, "tCO2/GJ", 0.11, "tCO2/GJ"),
        ("co2_per_electricity", "national", 2021, "cn", 0.5568, "tCO2/MWh", 0.5568, "tCO2/MWh"),
        ("co2_per_electricity", "national", 2022, "cn", 0.5366, "tCO2/MWh", 0.5366, "tCO2/MWh"),
        ("co2_per_electricity", "national", 2023, "cn", 0.5306, "tCO2/MWh", 0.5306, "tCO2/MWh"),
        ("co2_per_electricity", "central_china", 2022, "cn", 0.5395, "tCO2/MWh", 0.5395, "tCO2/MWh"),
        ("co2_per_electricity", "central_china", 2023, "cn", 0.5271, "tCO2/MWh", 0.5271, "tCO2/MWh"),
        ("co2_per_electricity", "henan", 2022, "cn", 0.6058, "tCO2/MWh", 0.6058, "tCO2/MWh"),
        ("tce_per_electricity", "electricity", None, "cn", 0.1229, "kgce/kWh", 0.1229, "tce/MWh"),
        ("tce_per_heat", "heat", None, "cn", 0.03412, "kgce/MJ", 0.03412, "tce/GJ"),
        ("tce_reference", "natural_gas_oilfield", None, "cn", 1.3300, "kgce/Nm3", 13.3, "tce/(10^4 Nm3)"),
        ("co2_per_heat", "natural_gas", None, "ipcc2006", 56100, "kgCO2/TJ", 0.0561, "tCO2/GJ"),
        ("n2o_per_heat", "bituminous_coal", None, "ipcc2006", 1.5, "kgN2O/TJ", 1.5e-6, "tN2O/GJ"),
    ],
)
def test_spot_values_match_the_methodology(factors: pd.DataFrame, parameter: str, subject: str,
                                           year: int | None, ruleset: str, value: float, unit: str,
                                           canonical: float, canonical_unit: str) -> None:
    row = one(factors, parameter=parameter, subject=subject, year=year, ruleset=ruleset)
    assert row["value"] == value
    assert row["unit"] == unit
    assert row["value_canonical"] == pytest.approx(canonical, rel=1e-12)
    assert row["unit_canonical"] == canonical_unit


def test_grid_factors_carry_their_publication_date_and_region(factors: pd.DataFrame) -> None:
    henan = one(factors, parameter="co2_per_electricity", subject="henan", year=2022)
    expected = ["CN-HA", "2024-12-20", "corroborated"]
    assert henan[["region", "published_on", "review_status"]].tolist() == expected
    national = one(factors, parameter="co2_per_electricity", subject="national", year=2023)
    assert national[["region", "published_on", "value_basis"]].tolist() == ["CN", "2025-12-31", "location"]


def test_the_henan_2023_grid_factor_is_not_invented(factors: pd.DataFrame) -> None:
    grid = factors[factors["parameter"] == "co2_per_electricity"]
    assert grid[(grid["subject"] == "henan") & (grid["year"] == 2023)].empty


@pytest.mark.parametrize("fuel", sorted(C1_EF_PER_UNIT))
def test_c1_parameters_reproduce_the_methodology_emission_factor(factors: pd.DataFrame, fuel: str) -> None:
    ncv, cc, of = (one(factors, parameter=p, subject=fuel)["value_canonical"]
                   for p in ("ncv", "carbon_content", "oxidation_rate"))
    assert ncv * cc * of * 44 / 12 == pytest.approx(C1_EF_PER_UNIT[fuel], rel=1e-5)


def test_gwp_sets_are_ordered_and_co2_is_one() -> None:
    library = load_library()
    assert library.gwp_sets() == ["SAR", "AR4", "AR5", "AR6"]
    for name in library.gwp_sets():
        table = library.gwp(name)
        assert list(table.columns[:3]) == ["gas", "gwp100", "gwp_set"]
        assert table.set_index("gas").at["CO2", "gwp100"] == 1.0
        assert set(table["gwp_set"]) == {name}
    ar6 = library.gwp("AR6").set_index("gas")
    assert ar6.at["CH4", "gwp100"] == 27.9
    assert ar6.at["CH4", "review_status"] == "corroborated"
    assert library.gwp("AR4").set_index("gas").at["N2O", "gwp100"] == 298
    assert "NF3" not in set(library.gwp("SAR")["gas"])


def test_an_unknown_gwp_set_is_an_error() -> None:
    with pytest.raises(FactorError, match="AR7"):
        load_library().gwp("AR7")


# --- invalid rows -----------------------------------------------------------------------------------

HEADER = ",".join(FACTOR_COLUMNS)
GOOD = "t.ncv,cn,ncv,anthracite,CN,,26.7,GJ/t,NCV,SAMR; SAC,GB/T 32151.34-2024,C.1,,,,,corroborated,"


def write_library(tmp_path: Path, *rows: str) -> Path:
    """A one-edition library whose single file holds ``rows`` after a valid first row (row 2)."""
    root = tmp_path / "lib"
    folder = root / "editions" / "test.1"
    folder.mkdir(parents=True)
    path = folder / "factors.csv"
    path.write_text("\n".join([HEADER, GOOD, *rows]) + "\n", encoding="utf-8")
    (root / "catalog.toml").write_text(
        '[[editions]]\nedition = "test.1"\nreleased = 2026-01-01\ndescription = "test"\n'
        f'[[editions.files]]\nfile = "factors.csv"\nsha256 = "{sha256(path)}"\n',
        encoding="utf-8",
    )
    return root


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("t.ncv,cn,ncv,lignite,CN,,11.9,GJ/t,NCV,SAMR; SAC,GB/T 32151.34-2024,C.1,,,,,corroborated,",
         "duplicate factor_id 't.ncv'"),
        ("t.cc,cn,carbon_content,anthracite,CN,,0.0274,kg,NCV,SAMR; SAC,GB/T,C.1,,,,,corroborated,",
         "unit 'kg' cannot express carbon_content"),
        ("t.of,cn,oxidation_rate,anthracite,CN,,1.5,1,NCV,SAMR; SAC,GB/T,C.1,,,,,corroborated,",
         "oxidation_rate 1.5 \\(1\\) is outside \\(0, 1\\]"),
        ("t.x,cn,sulfur_rate,anthracite,CN,,1,1,,SAMR; SAC,GB/T,C.1,,,,,corroborated,", "unknown parameter"),
        ("t.nan,cn,ncv,lignite,CN,,nan,GJ/t,NCV,SAMR; SAC,GB/T,C.1,,,,,corroborated,",
         "value 'nan' is not a finite number"),
        ("t.pub,cn,ncv,lignite,CN,,11.9,GJ/t,NCV,,GB/T,C.1,,,,,corroborated,", "publisher is empty"),
        ("t.doc,cn,ncv,lignite,CN,,11.9,GJ/t,NCV,SAC,,C.1,,,,,corroborated,", "document is empty"),
        ("t.u,cn,ncv,lignite,CN,,11.9,GJ/t,NCV,SAC,GB/T,C.1,,,,,unverified,", "review_status 'unverified'"),
        ("t.y,cn,ncv,lignite,CN,22,11.9,GJ/t,NCV,SAC,GB/T,C.1,,,,,verified,", "year '22'"),
    ],
)
def test_an_invalid_row_is_refused_naming_file_and_row(tmp_path: Path, row: str, message: str) -> None:
    library = load_library(write_library(tmp_path, row))
    with pytest.raises(FactorError, match=f"editions/test.1/factors.csv row 3: {message}"):
        library.factors()


def test_a_valid_row_with_a_percent_oxidation_rate_is_stored_as_a_fraction(tmp_path: Path) -> None:
    row = "t.of,cn,oxidation_rate,anthracite,CN,,94,%,NCV,SAC,GB/T,C.1,,,,,corroborated,"
    table = load_library(write_library(tmp_path, row)).factors()
    row = one(table, parameter="oxidation_rate", subject="anthracite")
    assert row["value_canonical"] == pytest.approx(0.94)


def test_a_wrong_header_is_refused_naming_the_file(tmp_path: Path) -> None:
    root = write_library(tmp_path)
    path = root / "editions" / "test.1" / "factors.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("factor_id,", "id,", 1), encoding="utf-8")
    catalog = root / "catalog.toml"
    text = catalog.read_text(encoding="utf-8")
    catalog.write_text(text.split('sha256 = "')[0] + f'sha256 = "{sha256(path)}"\n', encoding="utf-8")
    with pytest.raises(FactorError, match="factors.csv: header must be"):
        load_library(root).factors()


def test_a_factor_id_repeated_in_another_file_of_the_edition_is_refused(tmp_path: Path) -> None:
    root = write_library(tmp_path)
    second = root / "editions" / "test.1" / "more.csv"
    second.write_text(f"{HEADER}\n{GOOD}\n", encoding="utf-8")
    with (root / "catalog.toml").open("a", encoding="utf-8") as catalog:
        catalog.write(f'[[editions.files]]\nfile = "more.csv"\nsha256 = "{sha256(second)}"\n')
    with pytest.raises(FactorError, match="more.csv row 2: duplicate factor_id 't.ncv' .*factors.csv row 2"):
        load_library(root).factors()
