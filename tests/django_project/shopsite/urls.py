import importlib

from django.urls import path

# Imported by name: the apps are top-level packages at run time (Django's layout), which
# mypy, checking tests/ as one tree, would not find.
views = importlib.import_module("shop.views")

urlpatterns = [path("orders/", views.place_order)]
