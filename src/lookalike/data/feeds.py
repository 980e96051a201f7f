"""Product feeds: a merchant's catalog as rows of products, each with a SKU, image URLs and attributes.

Formats: CSV, TSV, JSON Lines (or a JSON array) and Parquet, told by the file name or, failing that, by the
bytes. Columns: the Google Merchant Center names (``id``, ``title``, ``image_link``, ``additional_image_link``,
``price``, ``brand``, ``color``, ``size``, ``availability``, ``product_type``, ``link``; ``g:`` prefixes dropped),
the Shopify product export (``Handle``, ``Title``, ``Image Src``, ``Variant Price``, ``Vendor``, ``Type``, ...,
one row per variant or image, grouped by handle), or the canonical names below; ``--map COLUMN=FIELD`` maps any
other column. A row that cannot be a product (no SKU, no image, a duplicate SKU) is reported, not fatal.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from lookalike.data.sources import MISSING, json_value, optional_str
from lookalike.errors import CatalogSourceError

MAX_SKU = 200
MAX_IMAGES = 20  # images kept per product

# Canonical fields. ``images`` holds every image URL in order (the first is the product's main image).
FIELDS = ("sku", "title", "images", "price", "currency", "brand", "color", "size", "availability", "category",
          "link", "description")

_GOOGLE = {"id": "sku", "title": "title", "image_link": "images", "additional_image_link": "images",
           "price": "price", "sale_price": "sale_price", "brand": "brand", "color": "color", "size": "size",
           "availability": "availability", "product_type": "category", "link": "link",
           "description": "description", "gender": "gender", "material": "material", "pattern": "pattern",
           "item_group_id": "item_group_id", "google_product_category": "google_product_category"}
_SHOPIFY = {"Handle": "sku", "Title": "title", "Image Src": "images", "Variant Image": "images",
            "Variant Price": "price", "Vendor": "brand", "Type": "category", "Body (HTML)": "description",
            "Tags": "tags", "Status": "status"}
_GENERIC = {"sku": "sku", "id": "sku", "item_id": "sku", "title": "title", "name": "title", "image": "images",
            "image_url": "images", "image_urls": "images", "image_link": "images", "images": "images",
            "additional_image_link": "images", "price": "price", "currency": "currency", "brand": "brand",
            "color": "color", "colour": "color", "size": "size", "sizes": "size", "availability": "availability",
            "in_stock": "in_stock", "category": "category", "product_type": "category", "link": "link",
            "url": "link", "description": "description"}
_PRICE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*([A-Za-z]{3})?\s*$")
_LIST_SPLIT = re.compile(r"\s*[,|]\s*|\s+(?=https?://)")


@dataclass
class FeedProduct:
    """One product of a feed: its SKU, category, image URLs (or paths) and the rest of its attributes."""

    sku: str
    images: list[str]
    category: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    row: int = 0  # the feed row it came from (the first, for grouped rows), 1-based


@dataclass
class Feed:
    """A parsed feed: its products, the rows that could not be read (row, SKU or None, reason) and its schema."""

    products: list[FeedProduct]
    failures: list[tuple[int, str | None, str]]
    schema: str  # "google", "shopify" or "generic"
    local_files: bool = False  # its images may be files of this machine (a local feed's, by its operator)


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``COLUMN=FIELD`` options as a mapping; CatalogSourceError for a malformed one."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise CatalogSourceError(f"--map takes COLUMN=FIELD, got {pair!r}")
        mapping[column.strip()] = target.strip()
    return mapping


def read_feed(data: bytes, name: str = "", mapping: dict[str, str] | None = None) -> Feed:
    """Parse a feed's bytes (``name``, a file name or URL, hints at the format)."""
    frame = _frame(data, name)
    frame.columns = [_column_name(c) for c in frame.columns]
    columns = set(frame.columns)
    mapping = mapping or {}
    if "Handle" in columns and ("Image Src" in columns or "Variant Image" in columns):
        schema, names = "shopify", _SHOPIFY
    elif "id" in columns and "image_link" in columns:
        schema, names = "google", _GOOGLE
    else:
        schema, names = "generic", _GENERIC
    names = {**names, **mapping}
    if "sku" not in {names.get(c) for c in columns}:
        raise CatalogSourceError(f"the feed has no SKU column (columns: {', '.join(sorted(columns)) or 'none'}); "
                                 "map one with --map COLUMN=sku")
    if "images" not in {names.get(c) for c in columns}:
        raise CatalogSourceError(f"the feed has no image column (columns: {', '.join(sorted(columns))}); map one "
                                 "with --map COLUMN=images")
    rows = [_canonical(row, names) for row in frame.to_dict(orient="records")]
    return _grouped(rows, schema) if schema == "shopify" else _products(rows, schema)


def _column_name(column: Any) -> str:
    name = str(column).strip()
    return name[2:] if name.startswith("g:") else name


def _frame(data: bytes, name: str) -> pd.DataFrame:
    suffix = PurePosixPath(name.split("?", 1)[0]).suffix.lower()
    text_start = data[:512].lstrip()
    try:
        if suffix in {".parquet", ".pq"} or data[:4] == b"PAR1":
            return pd.read_parquet(io.BytesIO(data))
        if suffix in {".jsonl", ".ndjson", ".json"} or text_start[:1] in {b"{", b"["}:
            if text_start[:1] == b"[":
                return pd.DataFrame(json.loads(data))
            return pd.DataFrame([json.loads(line) for line in data.splitlines() if line.strip()])
        text = data.decode("utf-8-sig")
        delimiter = "\t" if suffix in {".tsv", ".tab"} else _sniff_delimiter(text)
        return pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CatalogSourceError(f"could not read the feed {name or ''}: {exc}".replace("  ", " ")) from exc
    except Exception as exc:  # pyarrow's errors for a damaged Parquet file
        raise CatalogSourceError(f"could not read the feed {name}: {exc}") from exc


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:4096].split("\n", 1)[0], delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _canonical(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A feed row with canonical field names; image columns gathered into ``images``; empty cells dropped."""
    out: dict[str, Any] = {"images": []}
    for column, raw in row.items():
        value = json_value(raw)
        if isinstance(value, str):
            value = value.strip()
        if value is MISSING or value in ("", None, []):
            continue
        target = names.get(column, column)
        if target == "images":
            out["images"] += _urls(value)
        elif target not in out:
            out[target] = value
    return out


def _urls(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [u for u in _LIST_SPLIT.split(str(value)) if u]


def _product(row: dict[str, Any], number: int) -> FeedProduct | str:
    """A product from a canonical row, or why there is none."""
    sku = optional_str(row.pop("sku", None))
    if sku is None:
        return "no SKU"
    if len(sku) > MAX_SKU:
        return f"the SKU is longer than {MAX_SKU} characters"
    images = list(dict.fromkeys(row.pop("images")))[:MAX_IMAGES]
    if not images:
        return "no image URL"
    category = optional_str(row.pop("category", None))
    if category and ">" in category:  # a product-type path, "Apparel > Dresses > Maxi": its last step
        category = category.rsplit(">", 1)[1].strip() or category
    attributes = {k: v for k, v in row.items() if k != "category"}
    if "price" in attributes:
        attributes.update(_price(attributes.pop("price")))
    if "in_stock" not in attributes and "availability" in attributes:
        attributes["in_stock"] = str(attributes["availability"]).strip().lower().replace("_", " ") == "in stock"
    return FeedProduct(sku, images, category, attributes, number)


def _price(value: Any) -> dict[str, Any]:
    """``{"price": 15.0, "currency": "USD"}`` from "15.00 USD", "15,00" or 15.0; an unreadable price as given."""
    if isinstance(value, int | float):
        return {"price": float(value)}
    match = _PRICE.match(str(value))
    if not match:
        return {"price_text": str(value)}
    out: dict[str, Any] = {"price": float(match.group(1).replace(",", "."))}
    if match.group(2):
        out["currency"] = match.group(2).upper()
    return out


def _products(rows: list[dict[str, Any]], schema: str) -> Feed:
    products: dict[str, FeedProduct] = {}
    failures: list[tuple[int, str | None, str]] = []
    for number, row in enumerate(rows, start=1):
        sku = optional_str(row.get("sku"))
        found = _product(row, number)
        if isinstance(found, str):
            failures.append((number, sku, found))
        elif found.sku in products:
            failures.append((number, found.sku, f"duplicate SKU (first on row {products[found.sku].row})"))
        else:
            products[found.sku] = found
    return Feed(list(products.values()), failures, schema)


def _grouped(rows: list[dict[str, Any]], schema: str) -> Feed:
    """Shopify rows grouped by handle: the first row with a title gives the attributes; every row's images are
    the product's, in order; variant sizes and colours are gathered."""
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    failures: list[tuple[int, str | None, str]] = []
    for number, row in enumerate(rows, start=1):
        sku = optional_str(row.get("sku"))
        if sku is None:
            failures.append((number, None, "no handle"))
            continue
        groups.setdefault(sku, []).append((number, row))
    products: list[FeedProduct] = []
    for sku, members in groups.items():
        number, first = next(((n, r) for n, r in members if "title" in r), members[0])
        merged = dict(first)
        merged["images"] = [u for _, r in members for u in r.get("images", [])]
        for option in ("Option1", "Option2", "Option3"):
            label = str(first.get(f"{option} Name", "")).strip().lower()
            if label in {"size", "color", "colour"}:
                values = list(dict.fromkeys(str(r[f"{option} Value"]) for _, r in members if f"{option} Value" in r))
                merged["color" if label == "colour" else label] = values
        merged = {k: v for k, v in merged.items() if not re.match(r"(Option\d |Image |Variant )", k)}
        found = _product(merged, number)
        if isinstance(found, str):
            failures.append((number, sku, found))
        else:
            products.append(found)
    return Feed(products, failures, schema)
