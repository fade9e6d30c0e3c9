import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from graphile_worker_cli.contrib import django as gw

from .models import Order


@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    note = json.loads(request.body)["note"]
    with transaction.atomic():
        order = Order.objects.create(note=note)
        gw.add_job("send_receipt", {"order_id": order.id})
        if note == "fraud":
            raise ValueError("refused")  # the order and its job roll back together
    return JsonResponse({"id": order.id}, status=201)
