"""Product feeds: formats, the Google Merchant and Shopify columns, --map, and rows that cannot be products."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from lookalike.data.feeds import MAX_SKU, parse_mapping, read_feed
from lookalike.errors import CatalogSourceError

GOOGLE_TSV = (
    "g:id\tg:title\tg:image_link\tg:additional_image_link\tg:price\tg:brand\tg:color\tg:size\tg:availability\t"
    "g:product_type\tg:link\n"
    "A1\tRed dress\thttp://img/a.jpg\thttp://img/a2.jpg,http://img/a3.jpg\t15.00 USD\tAcme\tred\tM\tin stock\t"
    "Apparel > Dresses\thttps://shop/a1\n"
    "A2\tBlue tee\thttp://img/b.jpg\t\t9,50 EUR\tAcme\tblue\tL\tout_of_stock\tApparel > Tops\thttps://shop/a2\n"
    "\tNo SKU\thttp://img/c.jpg\t\t1.00 USD\t\t\t\t\t\t\n"
    "A3\tNo image\t\t\t1.00 USD\t\t\t\t\t\t\n"
    "A1\tAgain\thttp://img/z.jpg\t\t1.00 USD\t\t\t\t\t\t\n"
)


def test_google_merchant_columns_make_products_and_bad_rows_are_reported():
    feed = read_feed(GOOGLE_TSV.encode(), "feed.tsv")
    assert feed.schema == "google"
    assert [p.sku for p in feed.products] == ["A1", "A2"]
    first, second = feed.products
    assert first.images == ["http://img/a.jpg", "http://img/a2.jpg", "http://img/a3.jpg"]
    assert first.category == "Dresses" and second.category == "Tops"  # the last step of the product type
    assert first.attributes == {"title": "Red dress", "price": 15.0, "currency": "USD", "brand": "Acme",
                                "color": "red", "size": "M", "availability": "in stock", "in_stock": True,
                                "link": "https://shop/a1"}
    assert second.attributes["price"] == 9.5 and second.attributes["in_stock"] is False
    assert feed.failures == [(3, None, "no SKU"), (4, "A3", "no image URL"),
                             (5, "A1", "duplicate SKU (first on row 1)")]


def test_shopify_rows_are_grouped_by_handle_with_their_images_and_variants():
    csv = (
        "Handle,Title,Body (HTML),Vendor,Type,Tags,Option1 Name,Option1 Value,Variant Price,Image Src,Image Position\n"
        "tee-1,Tee,<p>Soft</p>,Acme,Tops,summer,Size,S,10.00,http://img/t1.jpg,1\n"
        "tee-1,,,,,,,M,10.00,http://img/t2.jpg,2\n"
        "tee-1,,,,,,,L,10.00,,\n"
        "dress-2,Dress,,Other,Dresses,,Size,M,30.00,http://img/d1.jpg,1\n"
    )
    feed = read_feed(csv.encode(), "products_export_1.csv")
    assert feed.schema == "shopify" and feed.failures == []
    tee, dress = feed.products
    assert (tee.sku, tee.images, tee.category) == ("tee-1", ["http://img/t1.jpg", "http://img/t2.jpg"], "Tops")
    assert tee.attributes == {"title": "Tee", "description": "<p>Soft</p>", "brand": "Acme", "tags": "summer",
                              "size": ["S", "M", "L"], "price": 10.0}
    assert dress.sku == "dress-2" and dress.attributes["price"] == 30.0


def test_json_lines_and_parquet_with_a_column_mapping():
    mapping = parse_mapping(["code=sku", "pic=images", "kind=category"])
    lines = b'{"code": "X", "pic": "http://img/1.jpg", "kind": "Bags", "price": 3}\n' \
            b'{"code": "Y", "pic": ["http://img/2.jpg", "http://img/3.jpg"]}\n'
    feed = read_feed(lines, "export.jsonl", mapping)
    assert [(p.sku, p.images, p.category) for p in feed.products] == [
        ("X", ["http://img/1.jpg"], "Bags"), ("Y", ["http://img/2.jpg", "http://img/3.jpg"], None)]
    assert feed.products[0].attributes == {"price": 3.0}
    frame = pd.DataFrame({"code": ["P1", "P2"], "pic": ["http://img/p1.jpg", "http://img/p2.jpg"],
                          "price": [1.5, 2.0]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    parquet = read_feed(buffer.getvalue(), "feed.parquet", mapping)
    assert [(p.sku, p.attributes["price"]) for p in parquet.products] == [("P1", 1.5), ("P2", 2.0)]


def test_a_generic_csv_is_detected_from_its_header():
    feed = read_feed(b"sku,image_url,title,size\nS1,http://img/s1.jpg,Shirt,XL\nS1-long," + b"http://img/x.jpg,,\n",
                     "https://merchant.example/feed?format=csv")
    assert feed.schema == "generic" and [p.sku for p in feed.products] == ["S1", "S1-long"]
    assert feed.products[0].attributes == {"title": "Shirt", "size": "XL"}


def test_unusable_feeds_and_mappings_say_why():
    with pytest.raises(CatalogSourceError, match="no SKU column"):
        read_feed(b"name,image\nA,http://img/a.jpg\n", "feed.csv")
    with pytest.raises(CatalogSourceError, match="no image column"):
        read_feed(b"sku,title\nA,Shirt\n", "feed.csv")
    with pytest.raises(CatalogSourceError, match="COLUMN=FIELD"):
        parse_mapping(["justacolumn"])
    with pytest.raises(CatalogSourceError, match="could not read the feed"):
        read_feed(b"PAR1 not really parquet", "feed.parquet")
    long = read_feed(f"sku,image\n{'x' * (MAX_SKU + 1)},http://img/a.jpg\n".encode(), "feed.csv")
    assert long.products == [] and "longer than" in long.failures[0][2]
