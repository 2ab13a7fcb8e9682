<?php
// echo.php - PHP echo for bench/peers_availability.sh (php-fpm behind nginx):
// the POST body back with 200.
echo file_get_contents('php://input');
