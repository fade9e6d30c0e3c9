from datetime import datetime

from django.db import models


class Order(models.Model):
    id: int
    note: "models.TextField[str, str]" = models.TextField()
    receipt_sent_at: "models.DateTimeField[datetime | None, datetime | None]" = (
        models.DateTimeField(null=True)
    )
