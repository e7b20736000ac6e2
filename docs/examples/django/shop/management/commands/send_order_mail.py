from django.core.management.base import BaseCommand

from shop.mailproxy import send_order_mail


class Command(BaseCommand):
    help = "Queue an order confirmation through mailproxy."

    def add_arguments(self, parser):
        parser.add_argument("to")
        parser.add_argument("--order", default="1001")

    def handle(self, *args, **options):
        self.stdout.write(str(send_order_mail(options["to"], options["order"])))
